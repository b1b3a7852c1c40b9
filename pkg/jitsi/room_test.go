package jitsi

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRoom(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		code Code // "" when the room is accepted
	}{
		{name: "ascii", in: "booking-123-abc", want: "booking-123-abc"},
		{name: "uppercase", in: "Booking-123-ABC", want: "booking-123-abc"},
		{name: "underscore dot tilde", in: "a_b.c~d", want: "a_b.c~d"},
		{name: "inner spaces", in: "Team Sync 2", want: "team%20sync%202"},
		{name: "accent", in: "Café", want: "caf%c3%a9"},
		{name: "decomposed accent composes", in: "Cafe\u0301", want: "caf%c3%a9"},
		{name: "full-width letters", in: "ＭＥＥＴ１", want: "meet1"},
		{name: "ligature", in: "ﬁnance", want: "finance"},
		{name: "CJK", in: "会议室", want: "%e4%bc%9a%e8%ae%ae%e5%ae%a4"},
		{name: "turkish dotted capital I", in: "İzmir", want: "i%cc%87zmir"},
		{name: "greek final sigma", in: "ΟΔΟΣ", want: "%ce%bf%ce%b4%ce%bf%cf%82"},
		{name: "greek medial sigma", in: "ΣΟΦΙΑ", want: "%cf%83%ce%bf%cf%86%ce%b9%ce%b1"},
		{name: "emoji with joiner", in: "team👩\u200d💻", want: "team%f0%9f%91%a9%e2%80%8d%f0%9f%92%bb"},
		{name: "ampersand", in: "Q&A", code: CodeRoomNotJoinable},
		{name: "apostrophe", in: "Mario's room", code: CodeRoomNotJoinable},
		{name: "full-width apostrophe", in: "Mario＇s", code: CodeRoomNotJoinable},
		{name: "slash", in: "a/b", code: CodeRoomNotJoinable},
		{name: "full-width slash", in: "a／b", code: CodeRoomNotJoinable},
		{name: "dot dot", in: "..", code: CodeRoomNotJoinable},
		{name: "single dot", in: ".", code: CodeRoomNotJoinable},
		{name: "percent", in: "100%", code: CodeRoomNotJoinable},
		{name: "percent-encoded slash", in: "a%2fb", code: CodeRoomNotJoinable},
		{name: "hash", in: "a#b", code: CodeRoomNotJoinable},
		{name: "question mark", in: "a?b", code: CodeRoomNotJoinable},
		{name: "parentheses", in: "room (1)", code: CodeRoomNotJoinable},
		{name: "wildcard", in: "*", code: CodeRoomNotJoinable},
		{name: "wildcard inside", in: "booking-*", code: CodeRoomNotJoinable},
		{name: "empty", in: "", code: CodeMissingField},
		{name: "whitespace only", in: "   ", code: CodeInvalidField},
		{name: "leading space", in: " room", code: CodeInvalidField},
		{name: "trailing tab", in: "room\t", code: CodeInvalidField},
		{name: "newline", in: "a\nb", code: CodeInvalidField},
		{name: "NUL", in: "a\x00b", code: CodeInvalidField},
		{name: "invalid UTF-8", in: "a\xffb", code: CodeInvalidField},
		{name: "bidi override", in: "a\u202eb", code: CodeInvalidField},
		{name: "private use", in: "a\ue000b", code: CodeInvalidField},
		{name: "too long input", in: strings.Repeat("a", MaxRoomInputBytes+1), code: CodeTooLong},
		{name: "too long once encoded", in: strings.Repeat("é", 200), code: CodeTooLong},
		{name: "longest ascii", in: strings.Repeat("a", MaxRoomBytes), want: strings.Repeat("a", MaxRoomBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Room(tt.in)
			if tt.code != "" {
				var ie *InputError
				if !errors.As(err, &ie) || ie.Code != tt.code || ie.Field != "room" {
					t.Fatalf("Room(%q) = %q, %v; want InputError %s on room", tt.in, got, err, tt.code)
				}
				if got != "" {
					t.Errorf("Room(%q) returned %q with an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Room(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if back := ClientRoomName(got); back != got {
				t.Errorf("ClientRoomName(%q) = %q; want the claim unchanged", got, back)
			}
		})
	}
}

func TestRoomErrorQuotesLongInputShortened(t *testing.T) {
	_, err := Room(strings.Repeat("x", 500) + "'")
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("Room(long name with ') error = %v; want a short message", err)
	}
}

func TestTenant(t *testing.T) {
	tests := []struct {
		in, want string
		code     Code
	}{
		{in: "", want: ""},
		{in: "acme", want: "acme"},
		{in: "ACME-Health", want: "acme-health"},
		{in: "a1", want: "a1"},
		{in: strings.Repeat("a", 63), want: strings.Repeat("a", 63)},
		{in: strings.Repeat("a", 64), code: CodeTooLong},
		{in: "-acme", code: CodeInvalidTenant},
		{in: "acme-", code: CodeInvalidTenant},
		{in: "ac me", code: CodeInvalidTenant},
		{in: "a/b", code: CodeInvalidTenant},
		{in: "..", code: CodeInvalidTenant},
		{in: "café", code: CodeInvalidTenant},
		{in: "a_b", code: CodeInvalidTenant},
	}
	for _, tt := range tests {
		got, err := Tenant(tt.in)
		if tt.code != "" {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Code != tt.code || ie.Field != "tenant" {
				t.Errorf("Tenant(%q) = %q, %v; want InputError %s", tt.in, got, err, tt.code)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Tenant(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestClientRoomName(t *testing.T) {
	tests := []struct{ segment, want string }{
		{"Booking-123", "booking-123"},
		{"caf%C3%A9", "caf%c3%a9"},
		{"Caf%c3%a9", "caf%c3%a9"},
		{"Café", "caf%c3%a9"},
		{"a(b)c!", "abc"},
		{"100%", "100%25"}, // does not decode: kept as is, then encoded
		{"%E0%A4%A", "%25e0%25a4%25a"},
		{"%ff", "%25ff"}, // decodes to invalid UTF-8: kept as is
		{"mario's", "marios"},
	}
	for _, tt := range tests {
		if got := ClientRoomName(tt.segment); got != tt.want {
			t.Errorf("ClientRoomName(%q) = %q; want %q", tt.segment, got, tt.want)
		}
	}
}

// TestRoomRoundTripGenerated checks, for many generated names, that every
// accepted name yields a claim that the web client derives back unchanged
// from the link's URL, and that the claim is plain ASCII.
func TestRoomRoundTripGenerated(t *testing.T) {
	pool := []rune("aZ09 -_.~!'()*%/?#&:;=+,@$[]\"<>\\éÉßİıΣσςÅ\u0301\u030aＡａ１／＇ﬁ①²会議室😀\u200d\u00a0\u2028\t\x00ǅẞ")
	rng := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for i := 0; i < 20000; i++ {
		n := 1 + rng.IntN(12)
		rs := make([]rune, n)
		for j := range rs {
			rs[j] = pool[rng.IntN(len(pool))]
		}
		name := string(rs)
		claim, err := Room(name)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("Room(%q) error %v is not an InputError", name, err)
			}
			continue
		}
		accepted++
		checkClaim(t, name, claim)
	}
	if accepted < 1000 {
		t.Fatalf("only %d of 20000 generated names were accepted; the generator is too hostile to test much", accepted)
	}
}

func checkClaim(t *testing.T, name, claim string) {
	t.Helper()
	if back := ClientRoomName(claim); back != claim {
		t.Fatalf("Room(%q) = %q, but the client derives %q from it", name, claim, back)
	}
	for i := 0; i < len(claim); i++ {
		c := claim[i]
		if c >= utf8.RuneSelf || c >= 'A' && c <= 'Z' || !uriUnreserved(c) && c != '%' {
			t.Fatalf("Room(%q) = %q holds %q, which is not lowercase URL-safe ASCII", name, claim, c)
		}
	}
	if len(claim) > MaxRoomBytes {
		t.Fatalf("Room(%q) is %d bytes", name, len(claim))
	}
}

func FuzzRoom(f *testing.F) {
	for _, s := range []string{"booking-1", "Café", "ΟΔΟΣ", "İ", "a/b", "..", "*", "100%", "会議", "ＭＥＥＴ", "a\u200db"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		claim, err := Room(name)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != "room" || ie.Message == "" {
				t.Fatalf("Room(%q) error %v is not a room InputError", name, err)
			}
			return
		}
		checkClaim(t, name, claim)
	})
}

func FuzzTenant(f *testing.F) {
	for _, s := range []string{"acme", "ACME", "-a", "a.b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		tenant, err := Tenant(name)
		if err != nil {
			return
		}
		if tenant != strings.ToLower(name) || ClientRoomName(tenant) != tenant {
			t.Fatalf("Tenant(%q) = %q does not survive the client's derivation", name, tenant)
		}
	})
}

func BenchmarkRoom(b *testing.B) {
	for _, in := range []string{"Booking-123-abc", "Café Crème 12"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Room(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestRoomPattern(t *testing.T) {
	tests := []struct{ in, want, bad string }{
		{in: "booking-*", want: "booking-*"},
		{in: "Booking-*", want: "booking-*"},
		{in: "*", want: "*"},
		{in: "Café *", want: "caf%c3%a9%20*"},
		{in: "*-clinic-*", want: "*-clinic-*"},
		{in: "", bad: "empty"},
		{in: "a/*", bad: `holds "/"`},
		{in: "mario's-*", bad: `holds "'"`},
	}
	for _, tt := range tests {
		got, err := RoomPattern(tt.in)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("RoomPattern(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.bad)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("RoomPattern(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"booking-*", "booking-123", true},
		{"booking-*", "booking-", true},
		{"booking-*", "xbooking-1", false},
		{"booking-*", "booking", false},
		{"*-clinic-*", "acme-clinic-7", true},
		{"*-clinic-*", "acme-clinic", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"a*a", "aaa", true},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"**x", "x", true},
	}
	for _, tt := range tests {
		if got := MatchPattern(tt.pattern, tt.s); got != tt.want {
			t.Errorf("MatchPattern(%q, %q) = %v; want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestTenantRefusesNonASCIIThatLowersToASCII(t *testing.T) {
	// strings.ToLower("\u212a") is "k": the Kelvin sign must not pass as
	// an ASCII DNS label.
	if got, err := Tenant("\u212aacme"); err == nil {
		t.Errorf("Tenant(Kelvin sign + acme) = %q; want an error", got)
	}
}
