// Package client calls a jitsi-signer service from Go: it asks for a meeting
// link with a signed Jitsi token for one user and one room.
//
// It depends on the standard library only, and on nothing of the service's
// own packages, so that a backend can import it without the server.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Role is what a user may do in a meeting.
type Role string

// The roles a link can grant.
const (
	RoleParticipant Role = "participant"
	RoleModerator   Role = "moderator"
)

// User is the person a link is for. Name is required.
type User struct {
	ID     string `json:"id,omitempty"`
	Name   string `json:"name"`
	Email  string `json:"email,omitempty"`
	Avatar string `json:"avatar,omitempty"`
}

// LinkRequest asks for a link to one room.
type LinkRequest struct {
	// Room is the room as you name it, for example "Booking 123"; the
	// service derives the form Jitsi uses.
	Room string
	// Tenant is optional: https://host/<tenant>/<room>.
	Tenant string
	User   User
	// Role defaults to RoleParticipant.
	Role Role
	// TTL is the token lifetime in whole seconds; zero asks for the
	// service's default.
	TTL time.Duration
	// Features sets context.features by key ("recording": true); only keys
	// Jitsi knows are accepted, and turning one on needs the caller's policy.
	Features map[string]bool
	// LobbyBypass and SecurityBypass let the user past the lobby and room
	// passwords; the caller's policy must allow them.
	LobbyBypass    bool
	SecurityBypass bool
}

// wireRequest is LinkRequest as the API reads it.
type wireRequest struct {
	Room       string `json:"room"`
	Tenant     string `json:"tenant,omitempty"`
	User       User   `json:"user"`
	Role       Role   `json:"role,omitempty"`
	TTLSeconds int64  `json:"ttl_seconds,omitempty"`

	Features       map[string]bool `json:"features,omitempty"`
	LobbyBypass    bool            `json:"lobby_bypass,omitempty"`
	SecurityBypass bool            `json:"security_bypass,omitempty"`
}

// Link is an issued meeting link.
type Link struct {
	// URL is the meeting link, carrying the token when it is signed.
	URL string `json:"url"`
	// Token is the JWT; empty when the link is unsigned.
	Token string `json:"token,omitempty"`
	// Room is the room claim exactly as signed, and the URL's room segment.
	Room string `json:"room"`
	// Tenant is the lowercase tenant, or "".
	Tenant    string `json:"tenant"`
	Moderator bool   `json:"moderator"`
	// Signed is false when the service has no signing secret: such a link
	// only pre-fills the display name.
	Signed bool `json:"signed"`
	// TokenID is the token's jti, also in the service's audit log.
	TokenID string `json:"token_id,omitempty"`
	// ExpiresAt is the token's exp; zero when unsigned.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Error is a refusal from the service: its problem+json body (RFC 9457),
// or, from something in between that does not speak it, the status alone.
// Use errors.As to read it.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the service's stable reason, for example "room_not_joinable";
	// empty when the answer was not a problem body.
	Code string
	// Field is the request field at fault ("user.name"), when there is one.
	Field string
	// Rule is the caller-policy field behind a 403 ("policy.roles").
	Rule string
	// Detail says what is wrong, for people.
	Detail string
	// RetryAfter is the wait the service asked for with a 429 or 503; zero
	// when it named none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "jitsi-signer: %d", e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Field != "" {
		b.WriteString(" (" + e.Field + ")")
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

// Temporary reports whether the same request may succeed later: rate
// limited (429) or unavailable (503).
func (e *Error) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusServiceUnavailable
}

// Defaults.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultMaxRetries = 2
	DefaultUserAgent  = "jitsi-signer-client-go"
	defaultBackoff    = 200 * time.Millisecond
	defaultMaxBackoff = 5 * time.Second
	// maxResponseBytes caps what is read from an answer.
	maxResponseBytes = 1 << 20
)

// Client calls a jitsi-signer service. It is safe for concurrent use.
type Client struct {
	endpoint   string
	apiKey     string
	hc         *http.Client
	timeout    time.Duration
	maxRetries int
	userAgent  string
	backoff    time.Duration
	maxBackoff time.Duration
	// sleep waits d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient sends requests through hc (for its transport, proxy or
// TLS settings). Its own Timeout, if any, applies to each attempt.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("client: WithHTTPClient(nil)")
		}
		c.hc = hc
		return nil
	}
}

// WithTimeout bounds each CreateLink call, retries and waits included.
// Zero means no bound besides the context's. The default is DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d < 0 {
			return fmt.Errorf("client: WithTimeout(%s) is negative", d)
		}
		c.timeout = d
		return nil
	}
}

// WithMaxRetries sets how many times a request is tried again after an
// answer that is safe to retry: 429, 503, or a connection that could not be
// made. Zero turns retries off. The default is DefaultMaxRetries.
func WithMaxRetries(n int) Option {
	return func(c *Client) error {
		if n < 0 {
			return fmt.Errorf("client: WithMaxRetries(%d) is negative", n)
		}
		c.maxRetries = n
		return nil
	}
}

// WithBackoff sets the exponential backoff between retries: the n-th wait
// is random in [0, min(max, initial·2ⁿ)]. A Retry-After from the service
// takes precedence.
func WithBackoff(initial, max time.Duration) Option {
	return func(c *Client) error {
		if initial <= 0 || max < initial {
			return fmt.Errorf("client: WithBackoff(%s, %s) needs 0 < initial <= max", initial, max)
		}
		c.backoff, c.maxBackoff = initial, max
		return nil
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) error {
		if ua == "" || strings.ContainsAny(ua, "\r\n") {
			return errors.New("client: WithUserAgent needs a non-empty single-line value")
		}
		c.userAgent = ua
		return nil
	}
}

// New returns a client for the service at baseURL (for example
// http://jitsi-signer:8080) that authenticates with apiKey. An empty apiKey
// sends no Authorization header, for a service that accepts anonymous calls.
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("client: base URL %q does not parse", baseURL)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("client: base URL %q must start with http:// or https://", baseURL)
	case u.Host == "":
		return nil, fmt.Errorf("client: base URL %q has no host", baseURL)
	case u.User != nil:
		return nil, errors.New("client: the base URL must not carry user information; pass the API key to New")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("client: base URL %q must not have a query or fragment", baseURL)
	}
	if strings.ContainsFunc(apiKey, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return nil, errors.New("client: the API key contains white space or control characters")
	}
	c := &Client{
		endpoint:   strings.TrimSuffix(u.String(), "/") + "/v1/links",
		apiKey:     apiKey,
		hc:         &http.Client{},
		timeout:    DefaultTimeout,
		maxRetries: DefaultMaxRetries,
		userAgent:  DefaultUserAgent,
		backoff:    defaultBackoff,
		maxBackoff: defaultMaxBackoff,
		sleep:      sleepCtx,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// String describes the client without its API key.
func (c *Client) String() string {
	return "client.Client(" + c.endpoint + ", api key [redacted])"
}

// GoString keeps the API key out of %#v.
func (c *Client) GoString() string { return c.String() }

// CreateLink asks the service for a link. A refusal is an *Error; requests
// are retried only where that is safe (429, 503, a connection that could not
// be made), so that a link is never issued twice for one call by a retry
// after the service may have acted on the request.
func (c *Client) CreateLink(ctx context.Context, req LinkRequest) (*Link, error) {
	body, err := encodeRequest(req)
	if err != nil {
		return nil, err
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	for attempt := 0; ; attempt++ {
		link, retry, err := c.try(ctx, body)
		if !retry || attempt >= c.maxRetries {
			return link, err
		}
		wait := c.wait(attempt, err)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			// The wait would outlast the call: answer now.
			return nil, err
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return nil, fmt.Errorf("client: %w while waiting to retry after: %w", serr, err)
		}
	}
}

// encodeRequest checks what the client alone can check and encodes req.
func encodeRequest(req LinkRequest) ([]byte, error) {
	if req.TTL < 0 || req.TTL%time.Second != 0 {
		return nil, fmt.Errorf("client: TTL %s must be a positive whole number of seconds", req.TTL)
	}
	return json.Marshal(wireRequest{
		Room:       req.Room,
		Tenant:     req.Tenant,
		User:       req.User,
		Role:       req.Role,
		TTLSeconds: int64(req.TTL / time.Second),

		Features:       req.Features,
		LobbyBypass:    req.LobbyBypass,
		SecurityBypass: req.SecurityBypass,
	})
}

// try makes one attempt. retry reports whether another is safe.
func (c *Client) try(ctx context.Context, body []byte) (link *Link, retry bool, err error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, false, fmt.Errorf("client: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json, application/problem+json")
	hreq.Header.Set("User-Agent", c.userAgent)
	if c.apiKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.hc.Do(hreq)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, false, fmt.Errorf("client: POST %s: %w", c.endpoint, ctxErr)
		}
		return nil, notSent(err), fmt.Errorf("client: POST %s: %w", c.endpoint, unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, false, fmt.Errorf("client: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := decodeProblem(resp, raw)
		return nil, e.Temporary(), e
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, false, fmt.Errorf("client: the answer is %q, not application/json", resp.Header.Get("Content-Type"))
	}
	var l Link
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, false, fmt.Errorf("client: the answer is not a link: %w", err)
	}
	if l.URL == "" {
		return nil, false, errors.New("client: the answer has no url")
	}
	return &l, false, nil
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// notSent reports whether err means the request never reached the service:
// the connection could not be made.
func notSent(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// decodeProblem reads a refusal. Bodies that are not problem+json give the
// status alone: their content is not the service's and is not repeated.
func decodeProblem(resp *http.Response, raw []byte) *Error {
	e := &Error{StatusCode: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/problem+json" {
		var p struct {
			Detail string `json:"detail"`
			Code   string `json:"code"`
			Field  string `json:"field"`
			Rule   string `json:"rule"`
		}
		if json.Unmarshal(raw, &p) == nil {
			e.Code, e.Field, e.Rule, e.Detail = p.Code, p.Field, p.Rule, p.Detail
		}
	}
	if e.Detail == "" {
		e.Detail = http.StatusText(resp.StatusCode)
	}
	return e
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(min(s, 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// wait is how long to wait before the retry after attempt: what the
// service asked for, else exponential backoff with full jitter.
func (c *Client) wait(attempt int, err error) time.Duration {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter
	}
	ceiling := c.maxBackoff
	if attempt < 30 {
		ceiling = min(c.backoff<<attempt, c.maxBackoff)
	}
	return rand.N(ceiling + 1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
