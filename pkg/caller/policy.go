package caller

import (
	"fmt"
	"math"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

// Denial codes: a caller asked for more than its policy allows.
const (
	CodeForbiddenRole     = "forbidden_role"
	CodeForbiddenRoom     = "forbidden_room"
	CodeForbiddenTenant   = "forbidden_tenant"
	CodeForbiddenTTL      = "forbidden_ttl"
	CodeForbiddenWildcard = "forbidden_wildcard"
	CodeForbiddenFeature  = "forbidden_feature"
	CodeForbiddenBypass   = "forbidden_bypass"
)

// Denial is a request refused by the caller's policy. Rule names the policy
// field that refused it.
type Denial struct {
	Code    string
	Field   string
	Rule    string
	Message string
}

func (d *Denial) Error() string { return d.Message }

// Rate is a token-bucket rate limit. PerSecond 0 means unlimited.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Defaults are the service-wide settings a policy is bounded by or falls
// back to.
type Defaults struct {
	// MaxTTL is the service-wide maximum token lifetime.
	MaxTTL time.Duration
	// Rate applies to callers whose policy names none.
	Rate Rate
}

// Policy is what one caller may ask for.
type Policy struct {
	moderator   bool
	participant bool
	// rooms are patterns over room claims; tenants over lowercase tenants,
	// where a link without a tenant has tenant "" (matched by "*" and by
	// the pattern "" that an absent tenants list stands for).
	rooms    []string
	tenants  []string
	maxTTL   time.Duration
	wildcard bool
	rate     Rate
	// mayEnable are the features the caller may turn on; features are the
	// defaults for those a request leaves unset.
	mayEnable uint64
	features  jitsi.Features
	// off sets every feature the caller may not turn on to false, for
	// moderator tokens that would otherwise carry no features object.
	off                 jitsi.Features
	lobbyBypass, secure bool
}

// OpenPolicy allows every role, room and tenant up to the service maximum,
// but never a wildcard room. It is the anonymous caller's policy.
func OpenPolicy(d Defaults) Policy {
	return Policy{moderator: true, participant: true, rooms: []string{"*"}, tenants: []string{"*"}, maxTTL: d.MaxTTL, rate: d.Rate,
		mayEnable: ^uint64(0), lobbyBypass: true, secure: true}
}

// policySpec is a policy as the callers file writes it.
type policySpec struct {
	Roles             []string  `json:"roles"`
	Rooms             []string  `json:"rooms"`
	Tenants           []string  `json:"tenants"`
	MaxTTL            string    `json:"max_ttl"`
	AllowWildcardRoom bool      `json:"allow_wildcard_room"`
	RateLimit         *rateSpec `json:"rate_limit"`
	// Features maps each feature the caller may turn on to its default.
	Features            map[string]bool `json:"features"`
	AllowLobbyBypass    bool            `json:"allow_lobby_bypass"`
	AllowSecurityBypass bool            `json:"allow_security_bypass"`
}

type rateSpec struct {
	RequestsPerSecond *float64 `json:"requests_per_second"`
	Burst             *int     `json:"burst"`
}

// parsePolicy checks a policy spec; errs gets one error per bad field.
func parsePolicy(where string, spec *policySpec, d Defaults) (Policy, []error) {
	if spec == nil {
		return Policy{}, []error{fmt.Errorf("%s: policy is missing (roles and rooms at least)", where)}
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{where}, args...)...))
	}
	p := Policy{maxTTL: d.MaxTTL, wildcard: spec.AllowWildcardRoom, rate: d.Rate,
		lobbyBypass: spec.AllowLobbyBypass, secure: spec.AllowSecurityBypass}
	for name, on := range spec.Features {
		ft, ok := jitsi.ParseFeature(name)
		if !ok {
			bad("policy.features has %q, which is not a Jitsi feature (%s)", name, strings.Join(jitsi.FeatureNames(), ", "))
			continue
		}
		p.mayEnable |= 1 << ft
		p.features = p.features.With(ft, on)
	}
	for i := range jitsi.FeatureNames() {
		if ft := jitsi.Feature(i); p.mayEnable&(1<<ft) == 0 {
			p.off = p.off.With(ft, false)
		}
	}
	if len(spec.Roles) == 0 {
		bad("policy.roles must list moderator, participant or both")
	}
	for _, r := range spec.Roles {
		switch jitsi.Role(r) {
		case jitsi.RoleModerator:
			p.moderator = true
		case jitsi.RoleParticipant:
			p.participant = true
		default:
			bad("policy.roles holds %q; roles are moderator and participant", r)
		}
	}
	if len(spec.Rooms) == 0 {
		bad(`policy.rooms must list at least one room pattern (such as "booking-*", or "*" for every room)`)
	}
	for _, r := range spec.Rooms {
		pat, err := jitsi.RoomPattern(r)
		if err != nil {
			bad("policy.rooms: %v", err)
			continue
		}
		p.rooms = append(p.rooms, pat)
	}
	for _, tn := range spec.Tenants {
		lower := strings.ToLower(tn)
		if tn == "" || strings.Trim(tn, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-*") != "" {
			bad("policy.tenants holds %q; a tenant pattern is letters, digits, '-' and '*'", tn)
			continue
		}
		p.tenants = append(p.tenants, lower)
	}
	if len(spec.Tenants) == 0 {
		// Without tenants the caller signs only links without one.
		p.tenants = []string{""}
	}
	if spec.MaxTTL != "" {
		ttl, err := time.ParseDuration(spec.MaxTTL)
		switch {
		case err != nil:
			bad("policy.max_ttl %q is not a Go duration such as 15m or 2h", spec.MaxTTL)
		case ttl < jitsi.MinTTL:
			bad("policy.max_ttl %s is shorter than %s", ttl, jitsi.MinTTL)
		case ttl > d.MaxTTL:
			bad("policy.max_ttl %s is above the service maximum JITSI_TOKEN_MAX_TTL %s", ttl, d.MaxTTL)
		default:
			p.maxTTL = ttl
		}
	}
	if rl := spec.RateLimit; rl != nil {
		if rl.RequestsPerSecond == nil || *rl.RequestsPerSecond < 0 || math.IsInf(*rl.RequestsPerSecond, 0) || math.IsNaN(*rl.RequestsPerSecond) {
			bad("policy.rate_limit.requests_per_second must be a number, 0 for unlimited")
		} else {
			p.rate.PerSecond = *rl.RequestsPerSecond
		}
		switch {
		case rl.Burst == nil && p.rate.PerSecond > 0:
			p.rate.Burst = max(1, int(math.Ceil(p.rate.PerSecond)))
		case rl.Burst != nil && (*rl.Burst < 1 || *rl.Burst > 1_000_000):
			bad("policy.rate_limit.burst must be between 1 and 1000000")
		case rl.Burst != nil:
			p.rate.Burst = *rl.Burst
		}
	}
	return p, errs
}

// MaxTTL is the longest token lifetime the policy allows.
func (p *Policy) MaxTTL() time.Duration { return p.maxTTL }

// Rate is the policy's rate limit.
func (p *Policy) Rate() Rate { return p.rate }

// authorize checks g against the policy for the caller named name. A TTL the
// request did not name is shortened to the policy's maximum.
func (p *Policy) authorize(name string, g *jitsi.Grant) error {
	switch {
	case g.Role == jitsi.RoleModerator && !p.moderator:
		return &Denial{Code: CodeForbiddenRole, Field: "role", Rule: "policy.roles",
			Message: fmt.Sprintf("caller %s may not request moderator links (policy.roles)", name)}
	case g.Role == jitsi.RoleParticipant && !p.participant:
		return &Denial{Code: CodeForbiddenRole, Field: "role", Rule: "policy.roles",
			Message: fmt.Sprintf("caller %s may not request participant links (policy.roles)", name)}
	}
	if !matchAny(p.tenants, g.Tenant) {
		what := fmt.Sprintf("tenant %q", g.Tenant)
		if g.Tenant == "" {
			what = "links without a tenant"
		}
		return &Denial{Code: CodeForbiddenTenant, Field: "tenant", Rule: "policy.tenants",
			Message: fmt.Sprintf("caller %s may not request %s (policy.tenants)", name, what)}
	}
	if g.WildcardRoom {
		if !p.wildcard {
			return &Denial{Code: CodeForbiddenWildcard, Field: "room", Rule: "policy.allow_wildcard_room",
				Message: fmt.Sprintf("caller %s may not request a token for every room (policy.allow_wildcard_room)", name)}
		}
	} else if !matchAny(p.rooms, g.Room) {
		return &Denial{Code: CodeForbiddenRoom, Field: "room", Rule: "policy.rooms",
			Message: fmt.Sprintf("caller %s may not request room %q (policy.rooms)", name, g.Room)}
	}
	if g.LobbyBypass && !p.lobbyBypass {
		return &Denial{Code: CodeForbiddenBypass, Field: "lobby_bypass", Rule: "policy.allow_lobby_bypass",
			Message: fmt.Sprintf("caller %s may not let users bypass the lobby (policy.allow_lobby_bypass)", name)}
	}
	if g.SecurityBypass && !p.secure {
		return &Denial{Code: CodeForbiddenBypass, Field: "security_bypass", Rule: "policy.allow_security_bypass",
			Message: fmt.Sprintf("caller %s may not let users bypass room security (policy.allow_security_bypass)", name)}
	}
	for _, ft := range g.Features.Enabled() {
		if p.mayEnable&(1<<ft) == 0 {
			return &Denial{Code: CodeForbiddenFeature, Field: "features." + ft.String(), Rule: "policy.features",
				Message: fmt.Sprintf("caller %s may not enable feature %s (policy.features)", name, ft)}
		}
	}
	g.Features = g.Features.Over(p.features)
	if g.Features.IsZero() && g.Role == jitsi.RoleModerator {
		// A self-hosted token without a features object gives moderators
		// every feature: spell out that those the caller may not turn on
		// are off. (With any features object, what it leaves out is off.)
		g.Features = p.off
	}
	if g.TTL > p.maxTTL {
		if g.TTLRequested {
			return &Denial{Code: CodeForbiddenTTL, Field: "ttl_seconds", Rule: "policy.max_ttl",
				Message: fmt.Sprintf("caller %s may request at most ttl_seconds %d (policy.max_ttl)", name, int64(p.maxTTL/time.Second))}
		}
		g.TTL = p.maxTTL
	}
	return nil
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if jitsi.MatchPattern(p, s) {
			return true
		}
	}
	return false
}

// newLimiter returns a limiter for r, or nil for no limit.
func newLimiter(r Rate) *rate.Limiter {
	if r.PerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)
}
