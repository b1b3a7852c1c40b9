package jitsi

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxRoomBytes is the longest room claim, in bytes, that Prosody accepts:
// the room becomes the local part of an XMPP address, which is capped at
// 1023 bytes.
const MaxRoomBytes = 1023

// MaxRoomInputBytes caps the room name a caller may send before it is
// derived, so that hostile input is refused before any work is done on it.
const MaxRoomInputBytes = 1024

// excludedRoomChars are the characters the Jitsi web client strips from the
// room and tenant segments of a meeting URL (jitsi-meet uri.ts,
// _ROOM_EXCLUDE_PATTERN), plus '%' and '\'. A room name holding any of them
// would lead the user to a room other than the one the token names, or
// cannot be joined at all (an apostrophe breaks the XMPP address). '%' is
// refused because a caller's room is a plain name, never a percent-encoded
// one: accepting it would make "caf%C3%A9" ambiguous.
const excludedRoomChars = `:?#[]@!$&'()*+,;=></"%\`

// Room derives the room claim for a room name as a caller writes it: the
// form the Jitsi web client derives from the meeting URL, which is what
// Prosody compares the token's room claim with. It applies the client's
// steps (NFKC, JavaScript lowercasing, encodeURIComponent, lowercasing) and
// refuses names that Jitsi cannot join or that would not survive the client's
// derivation unchanged. The claim is also the URL path segment that leads to
// the room.
func Room(name string) (string, error) {
	if claim, ok := asciiRoom(name); ok {
		return claim, nil
	}
	return slowRoom(name)
}

// slowRoom is Room without the ASCII fast path.
func slowRoom(name string) (string, error) {
	if err := checkPathPart("room", name, MaxRoomInputBytes); err != nil {
		return "", err
	}
	lowered := jsLowerCase(norm.NFKC.String(name))
	if err := checkDerivedChars("room", name, lowered); err != nil {
		return "", err
	}
	if lowered == "." || lowered == ".." {
		return "", inputErr("room", CodeRoomNotJoinable, "room %q is a URL dot segment and cannot be joined", name)
	}
	// The web client decodes the claim back to lowered and derives it again:
	// the claim survives when lowered is already NFKC and lowercase.
	if !norm.NFKC.IsNormalString(lowered) || !isJSLowerCase(lowered) {
		return "", inputErr("room", CodeRoomNotJoinable, "room %q does not survive the Jitsi web client's normalisation unchanged", name)
	}
	claim := encodeURIComponentLower(lowered)
	if len(claim) > MaxRoomBytes {
		return "", inputErr("room", CodeTooLong, "room is %d bytes once encoded for Jitsi; at most %d", len(claim), MaxRoomBytes)
	}
	return claim, nil
}

// asciiRoom derives the claim of the commonest room names without the
// Unicode machinery: ASCII letters, digits, '-', '_', '.', '~' and inner
// spaces. For these NFKC changes nothing, lowercasing is ASCII, and the
// claim survives the web client's derivation unchanged. It reports false for
// anything else, which Room then checks in full.
func asciiRoom(name string) (string, bool) {
	n, spaces := len(name), 0
	if n == 0 || name[0] == ' ' || name[n-1] == ' ' || name == "." || name == ".." {
		return "", false
	}
	upper := false
	for i := 0; i < n; i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
		case c >= 'A' && c <= 'Z':
			upper = true
		case c == ' ':
			spaces++
		default:
			return "", false
		}
	}
	if n+2*spaces > MaxRoomBytes {
		return "", false
	}
	if !upper && spaces == 0 {
		return name, true
	}
	b := make([]byte, 0, n+2*spaces)
	for i := 0; i < n; i++ {
		switch c := name[i]; {
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		case c == ' ':
			b = append(b, "%20"...)
		default:
			b = append(b, c)
		}
	}
	return string(b), true
}

// MaxTenantBytes is the longest tenant accepted: a tenant becomes a DNS
// label of the MUC domain (conference.<tenant>.<domain>).
const MaxTenantBytes = 63

// Tenant derives the tenant path segment and sub claim for a tenant name.
// A tenant is a DNS label (letters, digits and inner hyphens), because
// Jitsi turns it into a subdomain of the XMPP conference domain. Uppercase
// letters are lowered, as the web client does.
func Tenant(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	for i := 0; i < len(name); i++ {
		// Refuse non-ASCII before lowering: strings.ToLower turns some
		// (the Kelvin sign) into ASCII letters.
		if name[i] >= utf8.RuneSelf {
			return "", inputErr("tenant", CodeInvalidTenant,
				"tenant %q must be a DNS label: letters, digits and inner hyphens", truncate(name))
		}
	}
	if len(name) > MaxTenantBytes {
		return "", inputErr("tenant", CodeTooLong, "tenant is %d bytes; at most %d", len(name), MaxTenantBytes)
	}
	t := strings.ToLower(name)
	for i := 0; i < len(t); i++ {
		c := t[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(t)-1
		if !ok {
			return "", inputErr("tenant", CodeInvalidTenant,
				"tenant %q must be a DNS label: letters, digits and inner hyphens", truncate(name))
		}
	}
	return t, nil
}

// checkPathPart refuses what cannot be a room name before any derivation.
func checkPathPart(field, name string, maxBytes int) error {
	switch {
	case name == "":
		return inputErr(field, CodeMissingField, "%s is required", field)
	case len(name) > maxBytes:
		return inputErr(field, CodeTooLong, "%s is %d bytes; at most %d", field, len(name), maxBytes)
	case !utf8.ValidString(name):
		return inputErr(field, CodeInvalidField, "%s is not valid UTF-8", field)
	case strings.TrimSpace(name) == "":
		return inputErr(field, CodeInvalidField, "%s is only whitespace", field)
	case name == "*":
		return inputErr(field, CodeRoomNotJoinable, "%s %q would make a token for every room; name one room", field, name)
	}
	first, _ := utf8.DecodeRuneInString(name)
	last, _ := utf8.DecodeLastRuneInString(name)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return inputErr(field, CodeInvalidField, "%s %q has leading or trailing whitespace", field, truncate(name))
	}
	for _, r := range name {
		if bad := forbiddenRune(r); bad != "" {
			return inputErr(field, CodeInvalidField, "%s contains %s %U", field, bad, r)
		}
	}
	return nil
}

// checkDerivedChars refuses a name whose normalised form holds a character
// the web client strips or XMPP refuses. It runs after NFKC, because
// normalisation turns full-width forms such as U+FF0F into '/'.
func checkDerivedChars(field, name, derived string) error {
	if i := strings.IndexAny(derived, excludedRoomChars); i >= 0 {
		return inputErr(field, CodeRoomNotJoinable,
			"%s %q contains %q, which Jitsi strips from meeting URLs or cannot join", field, truncate(name), derived[i:i+1])
	}
	for _, r := range derived {
		if bad := forbiddenRune(r); bad != "" {
			return inputErr(field, CodeRoomNotJoinable, "%s normalises to %s %U", field, bad, r)
		}
	}
	return nil
}

// forbiddenRune names the class of a rune that may not appear in a name, or
// returns "" when the rune is acceptable. Control, private-use, surrogate,
// unassigned and bidirectional-override characters are refused; the zero
// width joiner and non-joiner, which emoji and several scripts need, are
// accepted.
func forbiddenRune(r rune) string {
	if r >= 0x20 && r < 0x7f {
		return ""
	}
	switch {
	case r == utf8.RuneError:
		return "the replacement character"
	case r == '\u200c' || r == '\u200d':
		return ""
	case unicode.Is(unicode.Cc, r):
		return "the control character"
	case unicode.Is(unicode.Cf, r):
		return "the format character"
	case unicode.Is(unicode.Co, r):
		return "the private-use character"
	case unicode.Is(unicode.Cs, r):
		return "the surrogate"
	case unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r):
		return "the line separator"
	case r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe:
		return "the noncharacter"
	case !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Zs):
		return "the unassigned character"
	}
	return ""
}

// ClientRoomName derives the room name the Jitsi web client joins for one
// path segment of a meeting URL, as jitsi-meet does: it strips the excluded
// characters from the raw segment, percent-decodes it (keeping it as is
// when it does not decode), applies NFKC and JavaScript lowercasing, then
// encodeURIComponent and lowercasing again.
func ClientRoomName(segment string) string {
	segment = stripExcluded(segment)
	if decoded, ok := decodeURIComponent(segment); ok {
		segment = decoded
	}
	return strings.ToLower(encodeURIComponent(jsLowerCase(norm.NFKC.String(segment))))
}

// stripExcluded removes the characters the web client removes from a path
// segment of a meeting URL.
func stripExcluded(s string) string {
	const clientExcluded = `:?#[]@!$&'()*+,;=></"`
	if !strings.ContainsAny(s, clientExcluded) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf && strings.ContainsRune(clientExcluded, r) {
			return -1
		}
		return r
	}, s)
}

// encodeURIComponentLower is strings.ToLower(encodeURIComponent(s)) for a
// string s that has no uppercase ASCII letters: hex digits come out
// lowercase, in one allocation.
func encodeURIComponentLower(s string) string { return percentEncode(s, "0123456789abcdef") }

// isJSLowerCase reports whether jsLowerCase would leave s unchanged.
func isJSLowerCase(s string) bool {
	for _, r := range s {
		if r == '\u0130' || r == '\u03a3' || unicode.ToLower(r) != r {
			return false
		}
	}
	return true
}

// encodeURIComponent percent-encodes s as JavaScript's encodeURIComponent:
// everything but ASCII letters, digits and -_.!~*'() is encoded as UTF-8
// bytes with uppercase hex digits.
func encodeURIComponent(s string) string { return percentEncode(s, "0123456789ABCDEF") }

// percentEncode encodes the bytes of s that encodeURIComponent encodes,
// with the given hex digits.
func percentEncode(s, hex string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !uriUnreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if uriUnreserved(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return string(b)
}

func uriUnreserved(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-_.!~*'()", c) >= 0
}

// decodeURIComponent decodes s as JavaScript's decodeURIComponent. It
// reports false where JavaScript would throw: a malformed escape or escapes
// that do not form valid UTF-8.
func decodeURIComponent(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	if !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// jsLowerCase lowercases s as JavaScript's String.prototype.toLowerCase:
// Unicode's simple lowercase mappings, plus the two that are not simple:
// U+0130 becomes "i" followed by U+0307, and a final capital sigma becomes
// U+03C2.
func jsLowerCase(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	runes := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range runes {
		switch r {
		case '\u0130':
			b.WriteString("i\u0307")
		case '\u03a3':
			if finalSigma(runes, i) {
				b.WriteRune('\u03c2')
			} else {
				b.WriteRune('\u03c3')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma reports whether the capital sigma at runes[i] ends a word, by
// Unicode's Final_Sigma condition: a cased letter before it and none after
// it, ignoring case-ignorable characters in between.
func finalSigma(runes []rune, i int) bool {
	j := i - 1
	for j >= 0 && caseIgnorable(runes[j]) {
		j--
	}
	if j < 0 || !cased(runes[j]) {
		return false
	}
	k := i + 1
	for k < len(runes) && caseIgnorable(runes[k]) {
		k++
	}
	return k == len(runes) || !cased(runes[k])
}

func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

func caseIgnorable(r rune) bool {
	if unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk) {
		return true
	}
	switch r {
	case '\'', '.', ':', '\u00b7', '\u0387', '\u055f', '\u05f4', '\u2018', '\u2019',
		'\u2024', '\u2027', '\ufe13', '\ufe52', '\ufe55', '\uff07', '\uff0e', '\uff1a':
		return true
	}
	return false
}

// truncate shortens a value quoted in an error message so that a hostile
// 10 000-character field does not come back whole.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func inputErr(field string, code Code, format string, args ...any) *InputError {
	return &InputError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)}
}

// RoomPattern turns a pattern over room names, in which '*' stands for any
// run of characters (for example "Booking-*"), into a pattern over room
// claims: each literal part is derived as Room derives a name, so that
// "Café-*" matches the claim of "CAFÉ-12". Characters a room cannot hold are
// refused.
func RoomPattern(p string) (string, error) {
	if p == "" {
		return "", errors.New("a room pattern is empty")
	}
	if !utf8.ValidString(p) {
		return "", errors.New("a room pattern is not valid UTF-8")
	}
	parts := strings.Split(p, "*")
	for i, part := range parts {
		if part == "" {
			continue
		}
		lowered := jsLowerCase(norm.NFKC.String(part))
		if j := strings.IndexAny(lowered, excludedRoomChars); j >= 0 {
			return "", fmt.Errorf("room pattern %q holds %q, which no room can", truncate(p), lowered[j:j+1])
		}
		for _, r := range lowered {
			if bad := forbiddenRune(r); bad != "" {
				return "", fmt.Errorf("room pattern %q holds %s %U", truncate(p), bad, r)
			}
		}
		parts[i] = strings.ToLower(encodeURIComponent(lowered))
	}
	return strings.Join(parts, "*"), nil
}

// MatchPattern reports whether s matches pattern, in which '*' matches any
// run of characters (including none) and every other byte matches itself.
func MatchPattern(pattern, s string) bool {
	// Greedy matching with one backtrack point: the last '*' seen.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
