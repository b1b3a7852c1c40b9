package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jitsi-signer/jitsi-signer/pkg/caller"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

// specPath is the API contract, relative to this package.
const specPath = "../../api/openapi.yaml"

// contract is the loaded specification and a router over it.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

var loadContract = sync.OnceValues(func() (*contract, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(specPath)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, err
	}
	// Tests serve on httptest's hosts, not on the listeners the spec names:
	// match operations by method and path alone.
	doc.Servers = nil
	for _, item := range doc.Paths.Map() {
		item.Servers = nil
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	// Public keys are PEM text: validate them as a string.
	openapi3filter.RegisterBodyDecoder("application/x-pem-file",
		func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(body)
			return string(b), err
		})
	return &contract{doc: doc, router: router}, nil
})

func mustContract(t testing.TB) *contract {
	t.Helper()
	c, err := loadContract()
	if err != nil {
		t.Fatalf("%s: %v", specPath, err)
	}
	return c
}

// validated wraps h so that every exchange through it is checked against
// the contract: each response must be documented for its operation and
// status and match its schema and headers; a request the contract does not
// allow must be refused with a 4xx; a request to an undocumented path or
// method must be answered 404 or 405 with the documented problem. Failures
// are reported on t, which may be called from any goroutine.
func validated(t testing.TB, h http.Handler) http.Handler {
	c := mustContract(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("contract: reading the request body: %v", err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())

		check := r.Clone(context.Background())
		check.Body = io.NopCloser(bytes.NewReader(body))
		if errs := c.check(check, rec); len(errs) > 0 {
			t.Errorf("contract: %s %s answered %d %s:\n%s", r.Method, r.URL.Path, rec.Code, truncateBody(rec.Body.String()),
				strings.Join(errs, "\n"))
		}
	})
}

// check returns every way the exchange departs from the contract.
func (c *contract) check(req *http.Request, rec *httptest.ResponseRecorder) []string {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return c.checkUnrouted(err, rec)
	}
	var errs []string
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if rerr := openapi3filter.ValidateRequest(context.Background(), in); rerr != nil && (rec.Code < 400 || rec.Code >= 500) {
		errs = append(errs, "a request the contract does not allow was not refused with a 4xx: "+rerr.Error())
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Options:                opts,
	}
	out.SetBodyBytes(rec.Body.Bytes())
	if rerr := openapi3filter.ValidateResponse(context.Background(), out); rerr != nil {
		errs = append(errs, fmt.Sprintf("the %d response does not match the contract: %v", rec.Code, rerr))
	}
	return errs
}

// checkUnrouted checks the answer to a path or method the contract does not
// have: 404 or 405, with the documented problem body on the API listener.
func (c *contract) checkUnrouted(routeErr error, rec *httptest.ResponseRecorder) []string {
	var name string
	var want int
	// The legacy router returns fresh RouteErrors; compare their reasons.
	var re *routers.RouteError
	switch {
	case !errors.As(routeErr, &re):
		return []string{"routing: " + routeErr.Error()}
	case re.Reason == routers.ErrPathNotFound.Error():
		name, want = "NotFound", http.StatusNotFound
	case re.Reason == routers.ErrMethodNotAllowed.Error():
		name, want = "MethodNotAllowed", http.StatusMethodNotAllowed
	default:
		return []string{"routing: " + routeErr.Error()}
	}
	if rec.Code != want {
		return []string{fmt.Sprintf("an undocumented endpoint answered %d; want %d", rec.Code, want)}
	}
	if rec.Header().Get("Content-Type") != "application/problem+json" {
		// The admin listener answers unknown paths with chi's plain text.
		return nil
	}
	resp := c.doc.Components.Responses[name].Value
	var v any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		return []string{"the problem body is not JSON: " + err.Error()}
	}
	if err := resp.Content["application/problem+json"].Schema.Value.VisitJSON(v); err != nil {
		return []string{"the problem body does not match components.responses." + name + ": " + err.Error()}
	}
	return nil
}

func truncateBody(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// TestSpecCoversRouters fails on any endpoint the routers serve that the
// contract lacks, and on any the contract promises that no router serves.
func TestSpecCoversRouters(t *testing.T) {
	c := mustContract(t)
	var routed []string
	walk := func(h http.Handler) {
		err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
			routed = append(routed, method+" "+route)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	a := newTestAPI(t, true, false)
	reg := prometheus.NewRegistry()
	walk(NewAPI(Options{Issuer: mustIssuer(t), Metrics: a.metrics, Logger: slog.New(slog.DiscardHandler), Keys: newRSAAPI(t).ks}))
	walk(NewAdmin(NewHealth(true), reg))

	var specified []string
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			specified = append(specified, method+" "+path)
		}
	}
	sort.Strings(routed)
	sort.Strings(specified)
	for _, r := range routed {
		if !slices.Contains(specified, r) {
			t.Errorf("the router serves %s; the contract (%s) does not describe it", r, specPath)
		}
	}
	for _, s := range specified {
		if !slices.Contains(routed, s) {
			t.Errorf("the contract describes %s; no router serves it", s)
		}
	}
}

// TestSpecProblemCodes checks that every code the service can answer with is
// in the contract's list, and nothing else is.
func TestSpecProblemCodes(t *testing.T) {
	c := mustContract(t)
	var inSpec []string
	for _, v := range c.doc.Components.Schemas["Problem"].Value.Properties["code"].Value.Enum {
		inSpec = append(inSpec, v.(string))
	}
	known := []string{
		CodeMalformedJSON, CodeUnknownField, CodeInvalidField, CodeBodyTooLarge, CodeUnsupportedMediaType,
		CodeUnauthorized, CodeNotFound, CodeMethodNotAllowed, CodeInternal,
		string(jitsi.CodeMissingField), string(jitsi.CodeInvalidField), string(jitsi.CodeTooLong),
		string(jitsi.CodeInvalidRole), string(jitsi.CodeInvalidTenant), string(jitsi.CodeRoomNotJoinable),
		string(jitsi.CodeTTLOutOfRange),
		// Caller policy and rate limits.
		caller.CodeForbiddenRole, caller.CodeForbiddenRoom, caller.CodeForbiddenTenant, caller.CodeForbiddenTTL,
		caller.CodeForbiddenWildcard, caller.CodeForbiddenFeature, caller.CodeForbiddenBypass, CodeRateLimited,
		CodeDuplicateField, string(jitsi.CodeUnknownFeature),
	}
	for _, k := range known {
		if !slices.Contains(inSpec, k) {
			t.Errorf("problem code %q is missing from the contract", k)
		}
	}
	for _, s := range inSpec {
		if !slices.Contains(known, s) {
			t.Errorf("the contract lists problem code %q, which the service never answers", s)
		}
	}
}

// TestContractRefusesDrift shows the validating wrapper catching a handler
// that departs from the contract.
func TestContractRefusesDrift(t *testing.T) {
	c := mustContract(t)
	tests := []struct {
		name    string
		req     *http.Request
		status  int
		ctype   string
		body    string
		wantErr string
	}{
		{"extra response field", linkReq(`{"room":"r","user":{"name":"A"}}`), 200, "application/json",
			`{"url":"u","room":"r","tenant":"","moderator":false,"signed":false,"extra":1}`, "extra"},
		{"undocumented status", linkReq(`{"room":"r","user":{"name":"A"}}`), 418, "application/problem+json",
			`{"type":"about:blank","title":"x","status":418,"detail":"d","code":"internal_error"}`, "418"},
		{"code of another status", linkReq(`{"room":"r","user":{"name":"A"}}`), 422, "application/problem+json",
			`{"type":"about:blank","title":"x","status":422,"detail":"d","code":"unauthorized","field":"room"}`, "code"},
		{"invalid request accepted", linkReq(`{"room":"r","user":{"name":"A"},"admin":true}`), 200, "application/json",
			`{"url":"u","room":"r","tenant":"","moderator":false,"signed":false}`, "not refused"},
		{"unknown path answered 200", httptest.NewRequest(http.MethodGet, "/v2/links", nil), 200, "application/json", `{}`, "undocumented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Content-Type", tt.ctype)
			rec.Header().Set("Cache-Control", "no-store")
			rec.WriteHeader(tt.status)
			rec.WriteString(tt.body)
			errs := c.check(tt.req, rec)
			if !strings.Contains(strings.Join(errs, "\n"), tt.wantErr) {
				t.Errorf("check(%s) = %q; want an error mentioning %q", tt.name, errs, tt.wantErr)
			}
		})
	}
}

func linkReq(body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/links", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+bookingKey)
	return r
}

// TestEmptyOptionalFields: null or "" in an optional field reads as
// absent, as the contract says.
func TestEmptyOptionalFields(t *testing.T) {
	a := newTestAPI(t, true, false)
	for _, body := range []string{
		`{"room":"r","tenant":null,"role":null,"ttl_seconds":null,"user":{"name":"A","id":null,"email":null,"avatar":null}}`,
		`{"room":"r","tenant":"","role":"","user":{"name":"A","id":"","email":"","avatar":""}}`,
	} {
		if rec := a.do(request{body: body}); rec.Code != http.StatusOK {
			t.Errorf("POST %s = %d %s; want 200", body, rec.Code, rec.Body)
		}
	}
}
