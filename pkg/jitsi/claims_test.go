package jitsi

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendJSONString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`q"b\s`, `"q\"b\\s"`},
		{"tab\tnl\ncr\r", `"tab\tnl\ncr\r"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"caf\u00e9 \u2028\u2029", "\"caf\u00e9 \\u2028\\u2029\""},
		{"bad\xffutf8", `"bad\ufffdutf8"`},
		{"<&>", `"<&>"`},
	}
	for _, tt := range tests {
		if got := string(appendJSONString(nil, tt.in)); got != tt.want {
			t.Errorf("appendJSONString(%q) = %s; want %s", tt.in, got, tt.want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "\"", "\\", "\x00", "\u2028", "\xff", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("appendJSONString(%q) = %s, which is not JSON: %v", s, out, err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); utf8.ValidString(s) && back != want {
			t.Fatalf("appendJSONString(%q) decodes to %q", s, back)
		}
	})
}

func TestClaimsAppendJSONDecodes(t *testing.T) {
	c := Claims{Audience: "jitsi", Issuer: "i", Subject: "s", Room: "r", ExpiresAt: 3, NotBefore: 1, IssuedAt: 2, ID: "j",
		User:          UserClaims{ID: "1", Name: "N \"x\"", Email: "e@x.y", Avatar: "https://a", Moderator: true, Affiliation: "owner"},
		ModeratorForm: ModeratorBool, TopLevelModerator: true}
	var got map[string]any
	if err := json.Unmarshal(c.AppendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	user := got["context"].(map[string]any)["user"].(map[string]any)
	if user["name"] != `N "x"` || user["moderator"] != true || got["moderator"] != true || got["exp"] != 3.0 {
		t.Errorf("decoded claims = %v", got)
	}
}
