package server

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Problem codes the API answers with, besides the jitsi.Code values of
// refused link requests. They are part of the API contract.
const (
	CodeMalformedJSON        = "malformed_json"
	CodeUnknownField         = "unknown_field"
	CodeDuplicateField       = "duplicate_field"
	CodeRateLimited          = "rate_limited"
	CodeInvalidField         = "invalid_field"
	CodeBodyTooLarge         = "body_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeUnauthorized         = "unauthorized"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeInternal             = "internal_error"
)

// problem is an RFC 9457 problem details body, with a stable code and the
// request field at fault where there is one.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	Field  string `json:"field,omitempty"`
	Rule   string `json:"rule,omitempty"`
}

// apiError is a refusal on its way to the client.
type apiError struct {
	status int
	code   string
	field  string
	detail string
	// rule names the policy field behind a 403.
	rule string
	// retryAfter is the Retry-After of a 429, in whole seconds.
	retryAfter int
}

func (e *apiError) Error() string { return e.detail }

// writeProblem writes e as application/problem+json.
func writeProblem(w http.ResponseWriter, e *apiError) {
	body, err := json.Marshal(problem{
		Type:   "about:blank",
		Title:  http.StatusText(e.status),
		Status: e.status,
		Detail: e.detail,
		Code:   e.code,
		Field:  e.field,
		Rule:   e.rule,
	})
	if err != nil {
		body = []byte(`{"type":"about:blank","status":500,"code":"internal_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}
