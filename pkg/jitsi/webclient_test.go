package jitsi

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// TestRoomMatchesJavaScript compares the Go derivation with a JavaScript
// engine's: testdata/webclient.js applies the web client's steps with
// Node.js's own NFKC, toLowerCase and encodeURIComponent. It covers
// hand-picked names and random assigned code points from every plane in
// use, and skips when node is not installed.
func TestRoomMatchesJavaScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; the JavaScript comparison needs it")
	}
	names := []string{
		"Booking-123", "Café", "Cafe\u0301", "ＭＥＥＴ", "ﬁ", "İstanbul", "ΟΔΟΣ", "ΣΟΦΙΑ", "Σ", "ΑΣ.", "ΑΣ'Α",
		"ǅemal", "ẞtraße", "Ⅻ", "①②", "㍿", "ﷺ", "Å", "Ω", "K", "ÅNGSTRÖM", "Ꭰꭰ", "𐐀𐐨", "𞤀", "Ⓐ", "ᾈ", "ﬀ", "㎒",
		"a b", "x\u00a0y", "한국어", "日本語", "😀", "team👩\u200d💻", "a(b)", "mario's", "100%", "caf%C3%A9",
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var generated int
	for generated < 4000 {
		var r rune
		switch rng.IntN(4) {
		case 0:
			r = rune(rng.IntN(0x250)) // Latin, with its case pairs
		case 1:
			r = rune(0x370 + rng.IntN(0x1d0)) // Greek, Cyrillic, Armenian
		case 2:
			r = rune(rng.IntN(0x10000))
		default:
			r = rune(0x10000 + rng.IntN(0x20000))
		}
		if !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Zs) {
			continue
		}
		names = append(names, string([]rune{'a', r, 'Z', r}))
		generated++
	}

	in, err := json.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "testdata/webclient.js")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node testdata/webclient.js: %v\n%s", err, stderr.String())
	}
	var results []struct{ Segment, Name string }
	if err := json.Unmarshal(out, &results); err != nil || len(results) != len(names) {
		t.Fatalf("node answered %d results (%v); want %d", len(results), err, len(names))
	}

	mismatches := 0
	for i, name := range names {
		goName := strings.ToLower(encodeURIComponent(jsLowerCase(norm.NFKC.String(name))))
		if goName != results[i].Name && !strings.ContainsAny(name, "%") {
			mismatches++
			if mismatches <= 10 {
				t.Errorf("name %q (%+q): Go derives %q, JavaScript %q", name, name, goName, results[i].Name)
			}
		}
		if got := ClientRoomName(name); got != results[i].Segment {
			mismatches++
			if mismatches <= 10 {
				t.Errorf("ClientRoomName(%q) = %q; JavaScript derives %q", name, got, results[i].Segment)
			}
		}
		claim, err := Room(name)
		if err != nil {
			continue
		}
		if claim != results[i].Name {
			t.Errorf("Room(%q) = %q; the web client's room for that name is %q", name, claim, results[i].Name)
		}
	}
	if mismatches > 0 {
		t.Errorf("%d mismatches between the Go and JavaScript derivations", mismatches)
	}
}
