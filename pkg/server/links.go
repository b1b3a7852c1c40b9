package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

// MaxBodyBytes caps a link request body. The largest valid request, every
// field at its limit, is well under it.
const MaxBodyBytes = 16 << 10

// linkRequest is the body of POST /v1/links.
type linkRequest struct {
	Room       string       `json:"room"`
	Tenant     string       `json:"tenant"`
	User       *userRequest `json:"user"`
	Role       string       `json:"role"`
	TTLSeconds *int64       `json:"ttl_seconds"`
	// Features are context.features; only keys Jitsi knows are accepted.
	Features       map[string]json.RawMessage `json:"features"`
	LobbyBypass    bool                       `json:"lobby_bypass"`
	SecurityBypass bool                       `json:"security_bypass"`
}

type userRequest struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Email  string `json:"email"`
	Avatar string `json:"avatar"`
}

// linkResponse is the answer to POST /v1/links.
type linkResponse struct {
	URL       string     `json:"url"`
	Token     string     `json:"token,omitempty"`
	Room      string     `json:"room"`
	Tenant    string     `json:"tenant"`
	Moderator bool       `json:"moderator"`
	Signed    bool       `json:"signed"`
	TokenID   string     `json:"token_id,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func (a *api) createLink(w http.ResponseWriter, r *http.Request) {
	c, aerr := a.authenticate(r)
	if aerr != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="jitsi-signer"`)
		a.reject(w, r, "", aerr)
		return
	}
	if ok, wait := c.Allow(a.now()); !ok {
		secs := int((wait + time.Second - 1) / time.Second)
		a.reject(w, r, c.Name, &apiError{status: http.StatusTooManyRequests, code: CodeRateLimited, retryAfter: secs,
			detail: fmt.Sprintf("caller %s is over its rate limit; retry in %d s", c.Name, secs)})
		return
	}
	req, aerr := decodeLinkRequest(w, r, a.issuer.MaxTTL())
	if aerr != nil {
		a.reject(w, r, c.Name, aerr)
		return
	}
	link, err := a.issuer.IssueFor(req, c)
	if err != nil {
		var ie *jitsi.InputError
		var d *caller.Denial
		switch {
		case errors.As(err, &ie):
			a.reject(w, r, c.Name, &apiError{status: http.StatusUnprocessableEntity, code: string(ie.Code), field: ie.Field, detail: ie.Message})
		case errors.As(err, &d):
			a.deny(w, r, c, req, d)
		default:
			a.log.Error("signing failed", "caller", c.Name, "alg", a.alg, "error", err.Error())
			a.reject(w, r, c.Name, &apiError{status: http.StatusInternalServerError, code: CodeInternal, detail: "the token could not be signed"})
		}
		return
	}

	role := string(jitsi.RoleParticipant)
	if link.Moderator {
		role = string(jitsi.RoleModerator)
	}
	a.metrics.linksIssued.WithLabelValues(c.Name, role, a.alg, a.signed).Inc()
	a.audit(r, c, req, link, role)

	resp := linkResponse{
		URL:       link.URL,
		Token:     link.Token,
		Room:      link.Room,
		Tenant:    link.Tenant,
		Moderator: link.Moderator,
		Signed:    link.Signed,
		TokenID:   link.TokenID,
	}
	if link.Signed {
		resp.ExpiresAt = &link.ExpiresAt
	}
	body, err := json.Marshal(resp)
	if err != nil {
		a.reject(w, r, c.Name, &apiError{status: http.StatusInternalServerError, code: CodeInternal, detail: "the response could not be encoded"})
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// deny answers a request the caller's policy refuses, and audits it.
func (a *api) deny(w http.ResponseWriter, r *http.Request, c *caller.Caller, req jitsi.LinkRequest, d *caller.Denial) {
	a.log.LogAttrs(r.Context(), slog.LevelWarn, "link denied",
		slog.String("event", "link_denied"),
		slog.String("caller", c.Name),
		slog.String("code", d.Code),
		slog.String("rule", d.Rule),
		slog.String("role", string(req.Role)),
		slog.String("user_id", req.User.ID))
	a.reject(w, r, c.Name, &apiError{status: http.StatusForbidden, code: d.Code, field: d.Field, rule: d.Rule, detail: d.Message})
}

// audit writes the one log line of an issued link. It names who asked for
// which room and token, never the token, the secret, or the user's name and
// email.
func (a *api) audit(r *http.Request, c *caller.Caller, req jitsi.LinkRequest, link jitsi.Link, role string) {
	attrs := []slog.Attr{
		slog.String("event", "link_issued"),
		slog.String("caller", c.Name),
		slog.String("room", link.Room),
		slog.String("tenant", link.Tenant),
		slog.String("user_id", req.User.ID),
		slog.String("role", role),
		slog.Bool("signed", link.Signed),
	}
	if link.Signed {
		attrs = append(attrs,
			slog.String("token_id", link.TokenID),
			slog.Time("expires_at", link.ExpiresAt),
			slog.String("alg", link.Algorithm),
			slog.String("kid", link.KeyID))
	}
	if link.Room == jitsi.WildcardRoom {
		// A token for every room is rare and powerful: say so loudly.
		attrs = append(attrs, slog.Bool("wildcard_room", true))
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "link issued for every room", attrs...)
		return
	}
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "link issued", attrs...)
}

// reject answers with a problem, counts it, and logs it without the body.
func (a *api) reject(w http.ResponseWriter, r *http.Request, callerName string, e *apiError) {
	label := callerName
	if label == "" {
		label = "unauthenticated"
	}
	a.metrics.rejected.WithLabelValues(label, e.code).Inc()
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "request rejected",
		slog.String("event", "link_rejected"),
		slog.String("caller", label),
		slog.Int("status", e.status),
		slog.String("code", e.code),
		slog.String("field", e.field))
	writeProblem(w, e)
}

var errUnauthorized = &apiError{status: http.StatusUnauthorized, code: CodeUnauthorized,
	detail: "missing or invalid API key: send Authorization: Bearer <api key>"}

// authenticate identifies the caller from its bearer key. Every failure
// gives the same answer; the metric tells missing, malformed and unknown
// keys apart without recording the key.
func (a *api) authenticate(r *http.Request) (*caller.Caller, *apiError) {
	if a.callers == nil {
		return a.anonymous, nil
	}
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		a.metrics.authFailures.WithLabelValues("missing").Inc()
		return nil, errUnauthorized
	}
	scheme, key, ok := strings.Cut(values[0], " ")
	key = strings.TrimLeft(key, " ")
	if len(values) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || key == "" || len(key) > caller.MaxKeyBytes {
		a.metrics.authFailures.WithLabelValues("malformed").Inc()
		return nil, errUnauthorized
	}
	c, ok := a.callers.Load().Authenticate([]byte(key))
	if !ok {
		a.metrics.authFailures.WithLabelValues("unknown_key").Inc()
		return nil, errUnauthorized
	}
	return c, nil
}

// decodeLinkRequest reads and decodes the body: JSON, UTF-8, one object, no
// unknown fields, at most MaxBodyBytes.
func decodeLinkRequest(w http.ResponseWriter, r *http.Request, maxTTL time.Duration) (jitsi.LinkRequest, *apiError) {
	if err := checkContentType(r.Header.Values("Content-Type")); err != nil {
		return jitsi.LinkRequest{}, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jitsi.LinkRequest{}, &apiError{status: http.StatusRequestEntityTooLarge, code: CodeBodyTooLarge,
				detail: fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes)}
		}
		return jitsi.LinkRequest{}, &apiError{status: http.StatusBadRequest, code: CodeMalformedJSON, detail: "request body could not be read"}
	}
	var req linkRequest
	if aerr := decodeJSON(body, &req); aerr != nil {
		return jitsi.LinkRequest{}, aerr
	}
	out := jitsi.LinkRequest{Room: req.Room, Tenant: req.Tenant, Role: jitsi.Role(req.Role),
		LobbyBypass: req.LobbyBypass, SecurityBypass: req.SecurityBypass}
	if len(req.Features) > 0 {
		// Set the features in sorted order, so that the unknown key
		// reported is the same whatever the order in the body.
		names := make([]string, 0, len(req.Features))
		for name := range req.Features {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			var on bool
			switch string(req.Features[name]) {
			case "true":
				on = true
			case "false":
			default:
				if _, known := jitsi.ParseFeature(name); known {
					field := "features." + name
					return jitsi.LinkRequest{}, &apiError{status: http.StatusUnprocessableEntity, code: CodeInvalidField, field: field,
						detail: field + " must be a boolean"}
				}
			}
			if err := out.Features.Set(name, on); err != nil {
				var ie *jitsi.InputError
				errors.As(err, &ie)
				return jitsi.LinkRequest{}, &apiError{status: http.StatusUnprocessableEntity, code: string(ie.Code), field: ie.Field, detail: ie.Message}
			}
		}
	}
	if req.User != nil {
		out.User = jitsi.User{ID: req.User.ID, Name: req.User.Name, Email: req.User.Email, Avatar: req.User.Avatar}
	}
	if req.TTLSeconds != nil {
		// Bound the seconds before converting, so that a huge value cannot
		// overflow into an acceptable duration.
		s := *req.TTLSeconds
		if s < int64(jitsi.MinTTL/time.Second) || s > int64(maxTTL/time.Second) {
			return jitsi.LinkRequest{}, &apiError{status: http.StatusUnprocessableEntity, code: string(jitsi.CodeTTLOutOfRange),
				field: "ttl_seconds", detail: fmt.Sprintf("ttl_seconds must be between %d and %d", int64(jitsi.MinTTL/time.Second), int64(maxTTL/time.Second))}
		}
		out.TTL = time.Duration(s) * time.Second
	}
	return out, nil
}

// checkContentType accepts application/json, with charset utf-8 if any.
func checkContentType(values []string) *apiError {
	unsupported := &apiError{status: http.StatusUnsupportedMediaType, code: CodeUnsupportedMediaType,
		detail: "Content-Type must be application/json"}
	if len(values) != 1 {
		return unsupported
	}
	mt, params, err := mime.ParseMediaType(values[0])
	if err != nil || mt != "application/json" {
		return unsupported
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return unsupported
		}
	}
	return nil
}

// decodeJSON decodes one JSON object from body into v, refusing unknown
// fields, trailing data and invalid UTF-8. Syntax problems are 400s; a value
// of the wrong type is a 422 naming the field.
func decodeJSON(body []byte, v any) *apiError {
	malformed := func(detail string) *apiError {
		return &apiError{status: http.StatusBadRequest, code: CodeMalformedJSON, detail: detail}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return malformed("request body is empty; send a JSON object")
	}
	if !utf8.Valid(body) {
		return malformed("request body is not valid UTF-8")
	}
	if aerr := checkShape(body); aerr != nil {
		return aerr
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return malformed("request body holds data after the JSON object")
		}
		return exactFields(body, reflect.TypeOf(v))
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return malformed(fmt.Sprintf("request body is not valid JSON (at byte %d)", syn.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("request body is truncated JSON")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return malformed("request body must be a JSON object")
		}
		return &apiError{status: http.StatusUnprocessableEntity, code: CodeInvalidField, field: typ.Field,
			detail: fmt.Sprintf("%s must be %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return &apiError{status: http.StatusBadRequest, code: CodeUnknownField, field: strings.Trim(name, `"`),
			detail: fmt.Sprintf("unknown field %s", name)}
	}
	return malformed("request body is not valid JSON")
}

// maxJSONDepth bounds how deeply a request body may nest; the request
// itself needs two levels.
const maxJSONDepth = 8

// checkShape refuses a key that appears twice in one object (encoding/json
// would silently keep the last, so a proxy and this service could read
// different requests) and nesting deeper than maxJSONDepth. Syntax errors
// are left to the decoder, which reports them with their offset.
func checkShape(body []byte) *apiError {
	type frame struct {
		object, expectKey bool
		keys              map[string]struct{}
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		top := len(stack) - 1
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:top]
			if top > 0 {
				stack[top-1].expectKey = stack[top-1].object
			}
			continue
		}
		if top >= 0 && stack[top].object && stack[top].expectKey {
			key, _ := tok.(string)
			if _, dup := stack[top].keys[key]; dup {
				return &apiError{status: http.StatusBadRequest, code: CodeDuplicateField, field: key,
					detail: fmt.Sprintf("key %q appears twice in one object", key)}
			}
			stack[top].keys[key] = struct{}{}
			stack[top].expectKey = false
			continue
		}
		if d, ok := tok.(json.Delim); ok {
			if len(stack) == maxJSONDepth {
				return &apiError{status: http.StatusBadRequest, code: CodeMalformedJSON,
					detail: fmt.Sprintf("request body nests deeper than %d levels", maxJSONDepth)}
			}
			f := frame{object: d == '{', expectKey: d == '{'}
			if f.object {
				f.keys = map[string]struct{}{}
			}
			stack = append(stack, f)
			continue
		}
		if top >= 0 {
			stack[top].expectKey = stack[top].object
		}
	}
}

// exactFields refuses object keys that name a field of t in another case
// ("Room"), which encoding/json accepts: the API's field names are exact.
func exactFields(raw []byte, t reflect.Type) *apiError {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		// null, or not an object: the decoder has judged it.
		return nil
	}
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields[name] = f.Type
	}
	keys := slices.Sorted(maps.Keys(obj))
	for _, k := range keys {
		ft, ok := fields[k]
		if !ok {
			return &apiError{status: http.StatusBadRequest, code: CodeUnknownField, field: k,
				detail: fmt.Sprintf("unknown field %q (field names are lowercase)", k)}
		}
		if err := exactFields(obj[k], ft); err != nil {
			return err
		}
	}
	return nil
}

// jsonKind names a Go kind the way a JSON author thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int64", "int", "uint", "float64":
		return "an integer"
	case "struct", "ptr", "map":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "a " + kind
}
