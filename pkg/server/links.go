package server

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

// MaxBodyBytes caps a link request body. The largest valid request, every
// field at its limit, is well under it.
const MaxBodyBytes = 16 << 10

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
	a.metrics.issued(c.Name, role, a.alg, a.signed).Inc()
	a.audit(r, c, req, link, role)

	buf := responsePool.Get().(*[]byte)
	*buf = appendLinkResponse((*buf)[:0], &link)
	writeJSON(w, http.StatusOK, *buf)
	responsePool.Put(buf)
}

// appendRaw appends s, which holds nothing JSON escapes, as a JSON string.
func appendRaw(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// responsePool recycles response buffers.
var responsePool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// appendLinkResponse encodes the answer to POST /v1/links without
// reflection: url, token, room, tenant, moderator, signed, token_id and
// expires_at, the unsigned link leaving out token, token_id and expires_at.
func appendLinkResponse(dst []byte, l *jitsi.Link) []byte {
	dst = append(dst, `{"url":`...)
	if l.Signed {
		// A signed link is the base URL (printable ASCII, no quotes or
		// backslashes), the tenant and room claim (URL-safe ASCII) and the
		// token (base64url and dots): nothing in it needs escaping.
		dst = appendRaw(dst, l.URL)
		dst = append(dst, `,"token":`...)
		dst = appendRaw(dst, l.Token)
	} else {
		dst = jitsi.AppendJSONString(dst, l.URL)
	}
	dst = append(dst, `,"room":`...)
	dst = jitsi.AppendJSONString(dst, l.Room)
	dst = append(dst, `,"tenant":`...)
	dst = jitsi.AppendJSONString(dst, l.Tenant)
	dst = append(dst, `,"moderator":`...)
	dst = strconv.AppendBool(dst, l.Moderator)
	dst = append(dst, `,"signed":`...)
	dst = strconv.AppendBool(dst, l.Signed)
	if l.TokenID != "" {
		dst = append(dst, `,"token_id":`...)
		dst = appendRaw(dst, l.TokenID)
	}
	if l.Signed {
		dst = append(dst, `,"expires_at":"`...)
		dst = l.ExpiresAt.UTC().AppendFormat(dst, time.RFC3339)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// deny answers a request the caller's policy refuses, and audits it.
func (a *api) deny(w http.ResponseWriter, r *http.Request, c *caller.Caller, req jitsi.LinkRequest, d *caller.Denial) {
	a.log.LogAttrs(r.Context(), slog.LevelWarn, "link denied",
		slog.String("event", "link_denied"),
		slog.String("caller", c.Name),
		slog.String("code", d.Code),
		slog.String("rule", d.Rule),
		slog.String("role", string(cmp.Or(req.Role, jitsi.RoleParticipant))),
		slog.String("user_id", req.User.ID))
	a.reject(w, r, c.Name, &apiError{status: http.StatusForbidden, code: d.Code, field: d.Field, rule: d.Rule, detail: d.Message})
}

// audit writes the one log line of an issued link. It names who asked for
// which room and token, never the token, the secret, or the user's name and
// email.
func (a *api) audit(r *http.Request, c *caller.Caller, req jitsi.LinkRequest, link jitsi.Link, role string) {
	var buf [12]slog.Attr
	attrs := append(buf[:0],
		slog.String("event", "link_issued"),
		slog.String("caller", c.Name),
		slog.String("room", link.Room),
		slog.String("tenant", link.Tenant),
		slog.String("user_id", req.User.ID),
		slog.String("role", role),
		slog.Bool("signed", link.Signed))
	if link.Signed {
		attrs = append(attrs,
			slog.String("token_id", link.TokenID),
			slog.Time("expires_at", link.ExpiresAt),
			slog.String("alg", link.Algorithm))
		if link.KeyID != "" {
			attrs = append(attrs, slog.String("kid", link.KeyID))
		}
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
	buf := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(buf)
	body, err := readBody(http.MaxBytesReader(w, r.Body, MaxBodyBytes), (*buf)[:0])
	*buf = body[:0]
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jitsi.LinkRequest{}, &apiError{status: http.StatusRequestEntityTooLarge, code: CodeBodyTooLarge,
				detail: fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes)}
		}
		return jitsi.LinkRequest{}, &apiError{status: http.StatusBadRequest, code: CodeMalformedJSON, detail: "request body could not be read"}
	}
	if !utf8.Valid(body) {
		return jitsi.LinkRequest{}, malformed("request body is not valid UTF-8")
	}
	p, aerr := parseLinkRequest(body)
	if aerr != nil {
		return jitsi.LinkRequest{}, aerr
	}
	if p.ttlSet {
		// Bound the seconds before converting, so that a huge value cannot
		// overflow into an acceptable duration.
		if p.ttl < int64(jitsi.MinTTL/time.Second) || p.ttl > int64(maxTTL/time.Second) {
			return jitsi.LinkRequest{}, &apiError{status: http.StatusUnprocessableEntity, code: string(jitsi.CodeTTLOutOfRange),
				field: "ttl_seconds", detail: fmt.Sprintf("ttl_seconds must be between %d and %d", int64(jitsi.MinTTL/time.Second), int64(maxTTL/time.Second))}
		}
		p.req.TTL = time.Duration(p.ttl) * time.Second
	}
	return p.req, nil
}

// bodyPool recycles request-body buffers: the decoder copies out every
// string it keeps.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// readBody reads r to its end, appending to buf.
func readBody(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// checkContentType accepts application/json, with charset utf-8 if any.
func checkContentType(values []string) *apiError {
	if len(values) == 1 && (values[0] == "application/json" || strings.EqualFold(values[0], "application/json; charset=utf-8")) {
		return nil
	}
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
