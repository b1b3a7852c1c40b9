// Package jitsi builds Jitsi Meet links that carry signed tokens: the token
// claims Prosody's token plugins check, room and tenant names in the form the
// Jitsi web client derives from a meeting URL, and signing behind a small
// interface. It has no HTTP dependencies and can be used in-process by Go
// backends.
package jitsi

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Role is what a user may do in a meeting.
type Role string

// The roles a link can grant.
const (
	RoleParticipant Role = "participant"
	RoleModerator   Role = "moderator"
)

// Field limits for the user, in bytes.
const (
	MaxUserIDBytes = 256
	MaxNameBytes   = 256
	MaxEmailBytes  = 254
	MaxAvatarBytes = 2048
)

// MinTTL is the shortest token lifetime a request may ask for, and
// MaxAllowedTTL the longest lifetime any configuration may allow.
const (
	MinTTL        = time.Minute
	MaxAllowedTTL = 720 * time.Hour
)

// User is the person a link is for.
type User struct {
	ID     string
	Name   string
	Email  string
	Avatar string
}

// LinkRequest asks for a link to one room.
type LinkRequest struct {
	// Room is the room as the caller names it, for example "Booking 123".
	Room string
	// Tenant is optional: https://host/<tenant>/<room>.
	Tenant string
	User   User
	// Role defaults to RoleParticipant.
	Role Role
	// TTL is the token lifetime; zero selects the configured default.
	TTL time.Duration
	// Features are the context.features the request sets; the issuer's
	// FeatureDefaults fill in what it leaves unset. Callers with a policy
	// decide them before the request reaches the issuer.
	Features Features
	// LobbyBypass and SecurityBypass let the user past the lobby and the
	// room password (context.user.lobby_bypass, security_bypass).
	LobbyBypass    bool
	SecurityBypass bool
}

// Link is an issued meeting link.
type Link struct {
	// URL is the meeting link, token included when it is signed.
	URL string
	// Token is the compact JWT, empty when the link is unsigned.
	Token string
	// Room is the room claim exactly as signed, and the URL's room segment.
	Room string
	// Tenant is the lowercase tenant, or "".
	Tenant    string
	Moderator bool
	Signed    bool
	// TokenID is the jti claim; empty when unsigned.
	TokenID string
	// ExpiresAt is the exp claim; zero when unsigned.
	ExpiresAt time.Time
	// Algorithm and KeyID are the signer's; empty when unsigned.
	Algorithm string
	KeyID     string
}

// TokenPlacement selects where in the meeting URL the token goes.
type TokenPlacement int

const (
	// TokenInQuery writes ?jwt=<token>, which every Jitsi client reads.
	TokenInQuery TokenPlacement = iota
	// TokenInFragment writes #jwt=<token>, which newer clients read; a
	// fragment never reaches web-server logs.
	TokenInFragment
)

// Mode selects the Jitsi deployment a token is for.
type Mode int

const (
	// ModeSelfHosted signs for a Jitsi deployment of one's own.
	ModeSelfHosted Mode = iota
	// ModeJaaS signs for 8x8 Jitsi as a Service: iss "chat", aud "jitsi",
	// sub the AppID, links https://8x8.vc/<AppID>/<room>, and
	// context.features always present.
	ModeJaaS
)

// JaaSBaseURL is where 8x8 JaaS meetings live.
const JaaSBaseURL = "https://8x8.vc"

// ValidJaaSAppID reports whether id has the form of an 8x8 JaaS AppID:
// vpaas-magic-cookie- followed by 32 lowercase hexadecimal digits.
func ValidJaaSAppID(id string) bool {
	const prefix = "vpaas-magic-cookie-"
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) != 32 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Config is what an Issuer needs besides its signer.
type Config struct {
	// Mode is ModeSelfHosted (the default) or ModeJaaS. In ModeJaaS, AppID
	// is the JaaS AppID, and Audience, Subject and ModeratorForm are set by
	// the mode.
	Mode Mode
	// FeatureDefaults fill in the features a request leaves unset. In
	// ModeJaaS, JaaSFeatureDefaults fill in what these leave unset.
	FeatureDefaults Features
	// BaseURL is the Jitsi deployment, scheme and host only, for example
	// https://meet.example.com.
	BaseURL string
	// AppID is the iss claim: Prosody's app_id, or one of its accepted issuers.
	AppID string
	// Audience is the aud claim, usually "jitsi".
	Audience string
	// Subject is the sub claim for links without a tenant; a link with a
	// tenant carries the tenant.
	Subject string
	// DefaultTTL applies when a request names none; MaxTTL bounds requests.
	DefaultTTL time.Duration
	MaxTTL     time.Duration
	// ClockSkew backdates nbf so that a Jitsi server whose clock is behind
	// ours still accepts a fresh token.
	ClockSkew time.Duration
	// ModeratorForm and TopLevelModerator shape the moderator claim.
	ModeratorForm     ModeratorForm
	TopLevelModerator bool
	// TokenPlacement puts the token in the query or the fragment.
	TokenPlacement TokenPlacement
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Issuer issues meeting links. It is safe for concurrent use.
type Issuer struct {
	cfg    Config
	signer Signer
	// base is the scheme and host followed by '/', prepared once.
	base string
	now  func() time.Time
}

// NewIssuer returns an Issuer for cfg. With a nil signer it issues unsigned
// links that only pre-fill the display name.
func NewIssuer(cfg Config, signer Signer) (*Issuer, error) {
	base, err := ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	var errs []error
	if signer != nil {
		if cfg.AppID == "" {
			errs = append(errs, errors.New("jitsi: AppID (the iss claim) is required for signed links"))
		}
		if cfg.Audience == "" {
			errs = append(errs, errors.New("jitsi: Audience is required for signed links"))
		}
		if cfg.Subject == "" {
			errs = append(errs, errors.New("jitsi: Subject is required for signed links"))
		}
	}
	if cfg.MaxTTL < MinTTL || cfg.MaxTTL > MaxAllowedTTL {
		errs = append(errs, fmt.Errorf("jitsi: MaxTTL %s must be between %s and %s", cfg.MaxTTL, MinTTL, MaxAllowedTTL))
	}
	if cfg.DefaultTTL < MinTTL || cfg.DefaultTTL > cfg.MaxTTL {
		errs = append(errs, fmt.Errorf("jitsi: DefaultTTL %s must be between %s and MaxTTL %s", cfg.DefaultTTL, MinTTL, cfg.MaxTTL))
	}
	if cfg.ClockSkew < 0 {
		errs = append(errs, fmt.Errorf("jitsi: ClockSkew %s is negative", cfg.ClockSkew))
	}
	if cfg.Mode == ModeJaaS {
		if !ValidJaaSAppID(cfg.AppID) {
			errs = append(errs, fmt.Errorf("jitsi: AppID %q is not an 8x8 JaaS AppID (vpaas-magic-cookie-<32 hex digits>)", truncate(cfg.AppID)))
		}
		if signer == nil {
			errs = append(errs, errors.New("jitsi: 8x8 JaaS needs signed links"))
		} else if signer.Algorithm() != "RS256" {
			errs = append(errs, fmt.Errorf("jitsi: 8x8 JaaS verifies RS256 only, not %s", signer.Algorithm()))
		}
		cfg.Audience = "jitsi"
		cfg.Subject = cfg.AppID
		cfg.ModeratorForm = ModeratorString
		cfg.FeatureDefaults = cfg.FeatureDefaults.Over(JaaSFeatureDefaults)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Issuer{cfg: cfg, signer: signer, base: base.String() + "/", now: now}, nil
}

// ParseBaseURL checks that raw is an absolute http or https URL with a host
// and no path, query, fragment or user information, and returns it without a
// trailing slash.
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("jitsi: base URL %q does not parse", raw)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("jitsi: base URL %q must start with https:// or http://", raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("jitsi: base URL %q has no host", raw)
	case u.User != nil:
		return nil, fmt.Errorf("jitsi: base URL %q must not carry user information", raw)
	case strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '"' || r == '\\' }):
		return nil, fmt.Errorf("jitsi: base URL %q must be printable ASCII without spaces, quotes or backslashes", raw)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.ForceQuery:
		return nil, fmt.Errorf("jitsi: base URL %q must be scheme://host[:port] only; send the tenant with each request", raw)
	}
	u.Path = ""
	u.Host = strings.ToLower(u.Host)
	return u, nil
}

// Signed reports whether the issuer signs its links.
func (is *Issuer) Signed() bool { return is.signer != nil }

// Signer returns the issuer's signer, or nil when links are unsigned.
func (is *Issuer) Signer() Signer { return is.signer }

// MaxTTL is the longest lifetime a token may have.
func (is *Issuer) MaxTTL() time.Duration { return is.cfg.MaxTTL }

// Grant is what a checked link request would grant, in the forms the token
// carries: the room claim, the lowercase tenant, the role and the lifetime.
type Grant struct {
	Room   string
	Tenant string
	Role   Role
	TTL    time.Duration
	// TTLRequested tells a TTL the request named from the default.
	TTLRequested bool
	// WildcardRoom is set for a token valid in every room (room "*").
	WildcardRoom bool
	// Features are the context.features the request sets; an Authorizer
	// may fill in defaults for those it leaves unset.
	Features Features
	// LobbyBypass and SecurityBypass are the request's.
	LobbyBypass    bool
	SecurityBypass bool
}

// Authorizer decides whether a caller may have a grant, before anything is
// signed. It may shorten a TTL the request did not name; any error it
// returns is passed back from IssueFor unchanged.
type Authorizer interface {
	Authorize(g *Grant) error
}

// Issue checks req and returns a link for it. A request that cannot be
// served comes back as an *InputError naming the field; any other error is
// the signer's. A room "*" is refused: only IssueFor with an Authorizer that
// allows it issues a token for every room.
func (is *Issuer) Issue(req LinkRequest) (Link, error) {
	return is.IssueFor(req, nil)
}

// IssueFor is Issue with an Authorizer consulted between checking the
// request and signing.
func (is *Issuer) IssueFor(req LinkRequest, auth Authorizer) (Link, error) {
	g, err := is.check(req, auth != nil)
	if err != nil {
		return Link{}, err
	}
	if auth != nil {
		if err := auth.Authorize(&g); err != nil {
			return Link{}, err
		}
		if g.TTL < MinTTL || g.TTL > is.cfg.MaxTTL {
			return Link{}, fmt.Errorf("jitsi: the authorizer set a TTL of %s, outside %s to %s", g.TTL, MinTTL, is.cfg.MaxTTL)
		}
	}
	room, tenant, ttl := g.Room, g.Tenant, g.TTL
	moderator := g.Role == RoleModerator
	if is.cfg.Mode == ModeJaaS {
		tenant = is.cfg.AppID
	}
	var b strings.Builder
	b.Grow(len(is.base) + len(tenant) + len(room) + 512)
	b.WriteString(is.base)
	if tenant != "" {
		b.WriteString(tenant)
		b.WriteByte('/')
	}
	if !g.WildcardRoom {
		b.WriteString(room)
	}
	link := Link{Room: room, Tenant: tenant, Moderator: moderator}
	if is.signer == nil {
		b.WriteString(`#userInfo.displayName="`)
		b.WriteString(encodeURIComponent(jsonStringContent(req.User.Name)))
		b.WriteByte('"')
		link.URL = b.String()
		return link, nil
	}

	now := is.now()
	claims := Claims{
		Audience:  is.cfg.Audience,
		Issuer:    is.cfg.AppID,
		Features:  g.Features.Over(is.cfg.FeatureDefaults),
		Subject:   is.cfg.Subject,
		Room:      room,
		ExpiresAt: now.Add(ttl).Unix(),
		NotBefore: now.Add(-is.cfg.ClockSkew).Unix(),
		IssuedAt:  now.Unix(),
		ID:        newTokenID(),
		User: UserClaims{
			ID:          req.User.ID,
			Name:        req.User.Name,
			Email:       req.User.Email,
			Avatar:      req.User.Avatar,
			Moderator:   moderator,
			Affiliation: affiliation(moderator),

			LobbyBypass:    g.LobbyBypass,
			SecurityBypass: g.SecurityBypass,
		},
		ModeratorForm:     is.cfg.ModeratorForm,
		TopLevelModerator: is.cfg.TopLevelModerator,
	}
	if tenant != "" {
		claims.Subject = tenant
	}
	if is.cfg.Mode == ModeJaaS {
		claims.Issuer = "chat"
	}
	buf := claimsPool.Get().(*[]byte)
	*buf = claims.AppendJSON((*buf)[:0])
	token, kid, err := signKeyed(is.signer, *buf)
	claimsPool.Put(buf)
	if err != nil {
		return Link{}, err
	}
	if is.cfg.TokenPlacement == TokenInFragment {
		b.WriteString("#jwt=")
	} else {
		b.WriteString("?jwt=")
	}
	b.WriteString(token)
	link.URL = b.String()
	link.Token = token
	link.Signed = true
	link.TokenID = claims.ID
	link.ExpiresAt = time.Unix(claims.ExpiresAt, 0).UTC()
	link.Algorithm = is.signer.Algorithm()
	link.KeyID = kid
	return link, nil
}

// check validates req and derives the grant it asks for. A room "*" is
// accepted only when an authorizer will rule on it.
func (is *Issuer) check(req LinkRequest, authorized bool) (Grant, error) {
	g := Grant{Role: RoleParticipant, TTL: req.TTL, TTLRequested: req.TTL != 0,
		Features: req.Features, LobbyBypass: req.LobbyBypass, SecurityBypass: req.SecurityBypass}
	switch req.Role {
	case "", RoleParticipant:
	case RoleModerator:
		g.Role = RoleModerator
	default:
		return Grant{}, inputErr("role", CodeInvalidRole, "role %q must be %q or %q", truncate(string(req.Role)), RoleModerator, RoleParticipant)
	}
	if g.TTL == 0 {
		g.TTL = is.cfg.DefaultTTL
	}
	if g.TTL < MinTTL || g.TTL > is.cfg.MaxTTL {
		return Grant{}, inputErr("ttl_seconds", CodeTTLOutOfRange, "ttl_seconds must be between %d and %d",
			int64(MinTTL/time.Second), int64(is.cfg.MaxTTL/time.Second))
	}
	if err := CheckUser(req.User); err != nil {
		return Grant{}, err
	}
	if is.cfg.Mode == ModeJaaS && req.Tenant != "" {
		return Grant{}, inputErr("tenant", CodeInvalidTenant, "tenant is not used with 8x8 JaaS: links lead to /<AppID>/<room>")
	}
	var err error
	if g.Tenant, err = Tenant(req.Tenant); err != nil {
		return Grant{}, err
	}
	if req.Room == WildcardRoom && authorized {
		g.Room, g.WildcardRoom = WildcardRoom, true
		return g, nil
	}
	if g.Room, err = Room(req.Room); err != nil {
		return Grant{}, err
	}
	return g, nil
}

// WildcardRoom is the room claim of a token valid in every room.
const WildcardRoom = "*"

// CheckUser refuses a user without a name, and fields that are too long,
// hold control characters, or are not what they claim to be (an email
// address, an http(s) avatar URL).
func CheckUser(u User) error {
	if strings.TrimSpace(u.Name) == "" {
		return inputErr("user.name", CodeMissingField, "user.name is required")
	}
	if err := checkText("user.name", u.Name, MaxNameBytes); err != nil {
		return err
	}
	if err := checkText("user.id", u.ID, MaxUserIDBytes); err != nil {
		return err
	}
	if u.Email != "" {
		if err := checkText("user.email", u.Email, MaxEmailBytes); err != nil {
			return err
		}
		if !plainEmail(u.Email) {
			addr, err := mail.ParseAddress(u.Email)
			if err != nil || addr.Name != "" || addr.Address != u.Email {
				return inputErr("user.email", CodeInvalidField, "user.email is not a plain email address (name@example.com)")
			}
		}
	}
	if u.Avatar != "" {
		if err := checkText("user.avatar", u.Avatar, MaxAvatarBytes); err != nil {
			return err
		}
		a, err := url.Parse(u.Avatar)
		if err != nil || (a.Scheme != "https" && a.Scheme != "http") || a.Host == "" || a.User != nil ||
			strings.ContainsAny(u.Avatar, " \"<>\\^`{|}") {
			return inputErr("user.avatar", CodeInvalidField, "user.avatar must be an absolute https:// or http:// URL")
		}
	}
	return nil
}

// checkText refuses text that is too long, not UTF-8, or holds characters
// that have no place in a name (control, format, private-use, unassigned).
func checkText(field, s string, maxBytes int) error {
	if len(s) > maxBytes {
		return inputErr(field, CodeTooLong, "%s is %d bytes; at most %d", field, len(s), maxBytes)
	}
	if !utf8.ValidString(s) {
		return inputErr(field, CodeInvalidField, "%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if bad := forbiddenRune(r); bad != "" {
			return inputErr(field, CodeInvalidField, "%s contains %s %U", field, bad, r)
		}
	}
	return nil
}

// plainEmail reports whether s is the common form of address, dot-atom@
// dot-atom (RFC 5322), which net/mail accepts as it is; other forms, such
// as quoted local parts, are left to net/mail.
func plainEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && dotAtom(s[:at]) && dotAtom(s[at+1:])
}

func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' ||
			strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0) {
			return false
		}
	}
	return true
}

func affiliation(moderator bool) string {
	if moderator {
		return "owner"
	}
	return "member"
}

// claimsPool recycles the buffers claims are encoded into; signers copy
// what they keep.
var claimsPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// newTokenID returns a random jti: 128 bits, base64url.
func newTokenID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails.
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// jsonStringContent returns s as the inside of a JSON string literal.
func jsonStringContent(s string) string {
	q := appendJSONString(nil, s)
	return string(q[1 : len(q)-1])
}
