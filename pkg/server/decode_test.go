package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

// referenceRequest is the request's shape for encoding/json, the reference
// the strict decoder is compared with.
type referenceRequest struct {
	Room   string `json:"room"`
	Tenant string `json:"tenant"`
	User   *struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Email  string `json:"email"`
		Avatar string `json:"avatar"`
	} `json:"user"`
	Role           string          `json:"role"`
	TTLSeconds     *int64          `json:"ttl_seconds"`
	Features       map[string]bool `json:"features"`
	LobbyBypass    bool            `json:"lobby_bypass"`
	SecurityBypass bool            `json:"security_bypass"`
}

func TestParseLinkRequest(t *testing.T) {
	tests := []struct {
		name, body string
		status     int
		code       string
		field      string
	}{
		{name: "full", body: `{"room":"Café","tenant":"acme","user":{"id":"1","name":"A \"B\" \u00e9\ud83d\ude00","email":"a@b.c","avatar":"https://x/y"},"role":"moderator","ttl_seconds":7200,"features":{"recording":true,"lobby":false},"lobby_bypass":true,"security_bypass":false}`},
		{name: "nulls", body: `{"room":"r","tenant":null,"user":{"name":"A","id":null},"role":null,"ttl_seconds":null,"features":null,"lobby_bypass":null}`},
		{name: "white space", body: " \t\r\n{ \"room\" : \"r\" , \"user\" : { \"name\" : \"A\" } } \n"},
		{name: "null body", body: `null`},
		{name: "escaped key", body: `{"\u0072oom":"r"}`},
		{name: "lone surrogate", body: `{"room":"\ud800x"}`},
		{name: "empty", body: ``, status: 400, code: CodeMalformedJSON},
		{name: "array", body: `[]`, status: 400, code: CodeMalformedJSON},
		{name: "string", body: `"room"`, status: 400, code: CodeMalformedJSON},
		{name: "trailing data", body: `{}{}`, status: 400, code: CodeMalformedJSON},
		{name: "trailing comma", body: `{"room":"r",}`, status: 400, code: CodeMalformedJSON},
		{name: "missing colon", body: `{"room" "r"}`, status: 400, code: CodeMalformedJSON},
		{name: "single quotes", body: `{'room':'r'}`, status: 400, code: CodeMalformedJSON},
		{name: "raw newline in string", body: "{\"room\":\"a\nb\"}", status: 400, code: CodeMalformedJSON},
		{name: "bad escape", body: `{"room":"\x41"}`, status: 400, code: CodeMalformedJSON},
		{name: "leading zero", body: `{"ttl_seconds":07}`, status: 400, code: CodeMalformedJSON},
		{name: "truncated", body: `{"room":"r"`, status: 400, code: CodeMalformedJSON},
		{name: "syntax error after a type error", body: `{"room":5,`, status: 400, code: CodeMalformedJSON},
		{name: "too deep", body: `{"x":[[[[[[[[[[1]]]]]]]]]]}`, status: 400, code: CodeMalformedJSON},
		{name: "unknown", body: `{"room":"r","admin":true}`, status: 400, code: CodeUnknownField, field: "admin"},
		{name: "miscased", body: `{"ROOM":"r"}`, status: 400, code: CodeUnknownField, field: "ROOM"},
		{name: "unknown in user", body: `{"user":{"Name":"A"}}`, status: 400, code: CodeUnknownField, field: "Name"},
		{name: "duplicate", body: `{"room":"a","room":"b"}`, status: 400, code: CodeDuplicateField, field: "room"},
		{name: "duplicate escaped", body: `{"room":"a","\u0072oom":"b"}`, status: 400, code: CodeDuplicateField, field: "room"},
		{name: "duplicate in user", body: `{"user":{"name":"a","name":"b"}}`, status: 400, code: CodeDuplicateField, field: "name"},
		{name: "duplicate feature", body: `{"features":{"lobby":true,"lobby":false}}`, status: 400, code: CodeDuplicateField, field: "lobby"},
		{name: "room a number", body: `{"room":5}`, status: 422, code: CodeInvalidField, field: "room"},
		{name: "user an array", body: `{"user":["A"]}`, status: 422, code: CodeInvalidField, field: "user"},
		{name: "ttl a fraction", body: `{"ttl_seconds":60.5}`, status: 422, code: CodeInvalidField, field: "ttl_seconds"},
		{name: "ttl an exponent", body: `{"ttl_seconds":6e1}`, status: 422, code: CodeInvalidField, field: "ttl_seconds"},
		{name: "ttl beyond int64", body: `{"ttl_seconds":99999999999999999999}`, status: 422, code: CodeInvalidField, field: "ttl_seconds"},
		{name: "ttl a string", body: `{"ttl_seconds":"60"}`, status: 422, code: CodeInvalidField, field: "ttl_seconds"},
		{name: "feature a string", body: `{"features":{"recording":"true"}}`, status: 422, code: CodeInvalidField, field: "features.recording"},
		{name: "unknown feature", body: `{"features":{"teleport":true}}`, status: 422, code: string(jitsi.CodeUnknownFeature), field: "features.teleport"},
		{name: "bypass a number", body: `{"lobby_bypass":1}`, status: 422, code: CodeInvalidField, field: "lobby_bypass"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, aerr := parseLinkRequest([]byte(tt.body))
			if tt.code == "" {
				if aerr != nil {
					t.Fatalf("parseLinkRequest(%s) = %v", tt.body, aerr)
				}
				checkSameAsEncodingJSON(t, []byte(tt.body), p)
				return
			}
			if aerr == nil || aerr.status != tt.status || aerr.code != tt.code || aerr.field != tt.field {
				t.Fatalf("parseLinkRequest(%s) = %+v; want %d %s on %q", tt.body, aerr, tt.status, tt.code, tt.field)
			}
		})
	}
}

// checkSameAsEncodingJSON decodes body with encoding/json and compares.
func checkSameAsEncodingJSON(t *testing.T, body []byte, p parsedRequest) {
	t.Helper()
	var ref referenceRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ref); err != nil {
		t.Fatalf("the strict decoder accepted %q, encoding/json refuses it: %v", body, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("the strict decoder accepted %q with trailing data", body)
	}
	got := p.req
	want := jitsi.LinkRequest{Room: ref.Room, Tenant: ref.Tenant, Role: jitsi.Role(ref.Role),
		LobbyBypass: ref.LobbyBypass, SecurityBypass: ref.SecurityBypass}
	if ref.User != nil {
		want.User = jitsi.User{ID: ref.User.ID, Name: ref.User.Name, Email: ref.User.Email, Avatar: ref.User.Avatar}
	}
	for name, on := range ref.Features {
		if err := want.Features.Set(name, on); err != nil {
			t.Fatalf("the strict decoder accepted unknown feature %q", name)
		}
	}
	got.TTL, want.TTL = 0, 0
	if got != want {
		t.Fatalf("decoding %q:\n strict       %+v\n encoding/json %+v", body, got, want)
	}
	if (ref.TTLSeconds != nil) != p.ttlSet || ref.TTLSeconds != nil && *ref.TTLSeconds != p.ttl {
		t.Fatalf("decoding %q: ttl %v %d; encoding/json %v", body, p.ttlSet, p.ttl, ref.TTLSeconds)
	}
}

// FuzzParseLinkRequest compares the strict decoder with encoding/json:
// whatever it accepts, encoding/json decodes to the same request; whatever
// encoding/json finds syntactically invalid, it refuses as malformed.
func FuzzParseLinkRequest(f *testing.F) {
	for _, s := range []string{
		`{"room":"r","user":{"name":"A"}}`, `{"room":"\u00e9\ud83d\ude00","ttl_seconds":60}`, `{"features":{"lobby":true}}`,
		`{"room":"a","room":"b"}`, `[1,{"a":[true,null,-1.5e3]}]`, `{"user":null,"role":"x"}`, `{"ttl_seconds":-0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return
		}
		p, aerr := parseLinkRequest(body)
		if aerr == nil {
			checkSameAsEncodingJSON(t, body, p)
			return
		}
		if aerr.code == "" || aerr.detail == "" || aerr.status/100 != 4 {
			t.Fatalf("parseLinkRequest(%q) = %+v", body, aerr)
		}
		if !json.Valid(body) && strings.TrimSpace(string(body)) != "" && aerr.code != CodeMalformedJSON {
			t.Fatalf("parseLinkRequest(%q) = %s; the body is not JSON", body, aerr.code)
		}
	})
}

func BenchmarkParseLinkRequest(b *testing.B) {
	body := []byte(`{"room":"Booking-123-abc","tenant":"acme","user":{"id":"42","name":"John Doe","email":"john@example.com"},"role":"moderator","ttl_seconds":7200}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, aerr := parseLinkRequest(body); aerr != nil {
			b.Fatal(aerr)
		}
	}
}

// FuzzLinkResponseIsJSON checks that every response the issuer can produce
// encodes to JSON that decodes back to the same link, including the parts
// written without escaping.
func FuzzLinkResponseIsJSON(f *testing.F) {
	f.Add("Booking 1", "acme", "Zoë \"Z\"", true)
	f.Add("Café", "", "A\\B", false)
	signed := mustIssuer(f)
	unsigned, err := jitsi.NewIssuer(jitsi.Config{BaseURL: "https://meet.example.com", DefaultTTL: time.Hour, MaxTTL: time.Hour}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, room, tenant, name string, sign bool) {
		is := unsigned
		if sign {
			is = signed
		}
		link, err := is.Issue(jitsi.LinkRequest{Room: room, Tenant: tenant, User: jitsi.User{Name: name}})
		if err != nil {
			return
		}
		var got linkResponse
		if err := json.Unmarshal(appendLinkResponse(nil, &link), &got); err != nil {
			t.Fatalf("response for %+v is not JSON: %v", link, err)
		}
		if got.URL != link.URL || got.Token != link.Token || got.Room != link.Room || got.TokenID != link.TokenID {
			t.Fatalf("response decodes to %+v; want %+v", got, link)
		}
	})
}

// linkResponse is the answer to POST /v1/links, as the tests read it.
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
