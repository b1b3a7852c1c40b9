package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

// maxJSONDepth bounds how deeply a request body may nest; the request
// itself needs two levels.
const maxJSONDepth = 8

// parsedRequest is a decoded POST /v1/links body.
type parsedRequest struct {
	req jitsi.LinkRequest
	// ttl is ttl_seconds when ttlSet.
	ttl    int64
	ttlSet bool
}

// Fields of the request, as bits for duplicate detection.
const (
	fRoom = 1 << iota
	fTenant
	fUser
	fRole
	fTTL
	fFeatures
	fLobbyBypass
	fSecurityBypass
	fUserID
	fUserName
	fUserEmail
	fUserAvatar
)

// decoder is a strict, single-pass JSON decoder for the link request. It
// accepts exactly the request's field names (no other case, no unknown
// fields), refuses a key twice in one object and nesting deeper than
// maxJSONDepth, and never reflects. Syntax errors (400 malformed_json) win
// over the first problem with the request's content, which it remembers
// while it checks the rest of the body.
type decoder struct {
	b []byte
	i int
	// first is the first content problem found: an unknown or duplicate
	// field, or a value of the wrong type.
	first *apiError
	// scratch holds strings that needed unescaping.
	scratch []byte
}

var errSyntax = errors.New("syntax")

// parseLinkRequest decodes body, which must be valid UTF-8.
func parseLinkRequest(body []byte) (parsedRequest, *apiError) {
	d := decoder{b: body}
	var p parsedRequest
	err := d.request(&p)
	if err == nil {
		d.ws()
		if d.i < len(d.b) {
			return parsedRequest{}, malformed("request body holds data after the JSON object")
		}
	}
	switch {
	case errors.Is(err, errSyntax):
		if d.i >= len(d.b) {
			return parsedRequest{}, malformed("request body is truncated JSON")
		}
		return parsedRequest{}, malformed(fmt.Sprintf("request body is not valid JSON (at byte %d)", d.i))
	case err != nil:
		var ae *apiError
		errors.As(err, &ae)
		return parsedRequest{}, ae
	case d.first != nil:
		return parsedRequest{}, d.first
	}
	return p, nil
}

func malformed(detail string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: CodeMalformedJSON, detail: detail}
}

// note remembers the first content problem.
func (d *decoder) note(e *apiError) {
	if d.first == nil {
		d.first = e
	}
}

func (d *decoder) noteType(field, want string) {
	d.note(&apiError{status: http.StatusUnprocessableEntity, code: CodeInvalidField, field: field,
		detail: fmt.Sprintf("%s must be %s", field, want)})
}

func (d *decoder) noteDuplicate(key []byte) {
	k := string(key)
	d.note(&apiError{status: http.StatusBadRequest, code: CodeDuplicateField, field: k,
		detail: fmt.Sprintf("key %q appears twice in one object", k)})
}

func (d *decoder) noteUnknown(key []byte) {
	k := string(key)
	d.note(&apiError{status: http.StatusBadRequest, code: CodeUnknownField, field: truncateField(k),
		detail: fmt.Sprintf("unknown field %q (field names are lowercase)", truncateField(k))})
}

func truncateField(s string) string {
	if len(s) <= 64 {
		return s
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// request decodes the top-level value: the request object, or null, which
// is an empty request.
func (d *decoder) request(p *parsedRequest) error {
	d.ws()
	if d.i >= len(d.b) {
		return malformed("request body is empty; send a JSON object")
	}
	switch d.b[d.i] {
	case 'n':
		return d.literal("null")
	case '{':
	default:
		if err := d.skip(1); err != nil {
			return err
		}
		return malformed("request body must be a JSON object")
	}
	d.i++
	var seen uint32
	for first := true; ; first = false {
		key, more, err := d.key(first)
		if err != nil || !more {
			return err
		}
		bit, known := requestFields[string(key)]
		if known && seen&bit != 0 {
			d.noteDuplicate(key)
		}
		seen |= bit
		switch bit {
		case fRoom:
			err = d.str(&p.req.Room, "room")
		case fTenant:
			err = d.str(&p.req.Tenant, "tenant")
		case fRole:
			var role string
			err = d.str(&role, "role")
			p.req.Role = jitsi.Role(role)
		case fTTL:
			err = d.ttl(p)
		case fUser:
			err = d.user(&p.req.User, &seen)
		case fFeatures:
			err = d.features(&p.req.Features)
		case fLobbyBypass:
			err = d.boolean(&p.req.LobbyBypass, "lobby_bypass")
		case fSecurityBypass:
			err = d.boolean(&p.req.SecurityBypass, "security_bypass")
		default:
			d.noteUnknown(key)
			err = d.skip(2)
		}
		if err != nil {
			return err
		}
	}
}

var requestFields = map[string]uint32{
	"room": fRoom, "tenant": fTenant, "user": fUser, "role": fRole, "ttl_seconds": fTTL,
	"features": fFeatures, "lobby_bypass": fLobbyBypass, "security_bypass": fSecurityBypass,
}

var userFields = map[string]uint32{"id": fUserID, "name": fUserName, "email": fUserEmail, "avatar": fUserAvatar}

func (d *decoder) user(u *jitsi.User, seen *uint32) error {
	if open, err := d.openObject("user"); !open {
		return err
	}
	for first := true; ; first = false {
		key, more, err := d.key(first)
		if err != nil || !more {
			return err
		}
		bit, known := userFields[string(key)]
		if known && *seen&bit != 0 {
			d.noteDuplicate(key)
		}
		*seen |= bit
		switch bit {
		case fUserID:
			err = d.str(&u.ID, "user.id")
		case fUserName:
			err = d.str(&u.Name, "user.name")
		case fUserEmail:
			err = d.str(&u.Email, "user.email")
		case fUserAvatar:
			err = d.str(&u.Avatar, "user.avatar")
		default:
			d.noteUnknown(key)
			err = d.skip(3)
		}
		if err != nil {
			return err
		}
	}
}

func (d *decoder) features(f *jitsi.Features) error {
	if open, err := d.openObject("features"); !open {
		return err
	}
	var seen uint64
	for first := true; ; first = false {
		key, more, err := d.key(first)
		if err != nil || !more {
			return err
		}
		ft, known := jitsi.ParseFeature(string(key))
		if !known {
			var ie *jitsi.InputError
			errors.As(f.Set(string(key), false), &ie)
			d.note(&apiError{status: http.StatusUnprocessableEntity, code: string(ie.Code), field: ie.Field, detail: ie.Message})
			if err := d.skip(3); err != nil {
				return err
			}
			continue
		}
		if seen&(1<<ft) != 0 {
			d.noteDuplicate(key)
		}
		seen |= 1 << ft
		var on bool
		if err := d.boolean(&on, "features."+ft.String()); err != nil {
			return err
		}
		*f = f.With(ft, on)
	}
}

// openObject reads the start of an object field's value. It reports false
// for null (the field is absent) and for a value of another type, which it
// notes and skips.
func (d *decoder) openObject(field string) (bool, error) {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == 'n' {
		return false, d.literal("null")
	}
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		d.noteType(field, "an object")
		return false, d.skip(2)
	}
	d.i++
	return true, nil
}

// key reads the next key of an object and its colon; more is false at the
// closing brace.
func (d *decoder) key(first bool) (key []byte, more bool, err error) {
	d.ws()
	if d.i >= len(d.b) {
		return nil, false, errSyntax
	}
	switch c := d.b[d.i]; {
	case c == '}':
		d.i++
		return nil, false, nil
	case !first && c == ',':
		d.i++
		d.ws()
	case !first:
		return nil, false, errSyntax
	}
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false, errSyntax
	}
	key, err = d.rawString()
	if err != nil {
		return nil, false, err
	}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != ':' {
		return nil, false, errSyntax
	}
	d.i++
	return key, true, nil
}

// str reads a string field; null leaves it empty.
func (d *decoder) str(dst *string, field string) error {
	d.ws()
	if d.i >= len(d.b) {
		return errSyntax
	}
	switch d.b[d.i] {
	case '"':
		s, err := d.rawString()
		if err != nil {
			return err
		}
		*dst = string(s)
		return nil
	case 'n':
		return d.literal("null")
	}
	d.noteType(field, "a string")
	return d.skip(2)
}

func (d *decoder) boolean(dst *bool, field string) error {
	d.ws()
	if d.i >= len(d.b) {
		return errSyntax
	}
	switch d.b[d.i] {
	case 't':
		*dst = true
		return d.literal("true")
	case 'f':
		*dst = false
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	d.noteType(field, "a boolean")
	return d.skip(3)
}

// ttl reads ttl_seconds: an integer, or null.
func (d *decoder) ttl(p *parsedRequest) error {
	d.ws()
	if d.i >= len(d.b) {
		return errSyntax
	}
	c := d.b[d.i]
	if c == 'n' {
		return d.literal("null")
	}
	if c != '-' && (c < '0' || c > '9') {
		d.noteType("ttl_seconds", "an integer")
		return d.skip(2)
	}
	start := d.i
	integer, err := d.number()
	if err != nil {
		return err
	}
	n, perr := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	if !integer || perr != nil {
		d.noteType("ttl_seconds", "an integer")
		return nil
	}
	p.ttl, p.ttlSet = n, true
	return nil
}

// number reads a JSON number and reports whether it is an integer (no
// fraction, no exponent).
func (d *decoder) number() (integer bool, err error) {
	b := d.b
	if d.i < len(b) && b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i >= len(b):
		return false, errSyntax
	case b[d.i] == '0':
		d.i++
	case b[d.i] >= '1' && b[d.i] <= '9':
		for d.i < len(b) && b[d.i] >= '0' && b[d.i] <= '9' {
			d.i++
		}
	default:
		return false, errSyntax
	}
	integer = true
	if d.i < len(b) && b[d.i] == '.' {
		integer = false
		d.i++
		if !d.digits() {
			return false, errSyntax
		}
	}
	if d.i < len(b) && (b[d.i] == 'e' || b[d.i] == 'E') {
		integer = false
		d.i++
		if d.i < len(b) && (b[d.i] == '+' || b[d.i] == '-') {
			d.i++
		}
		if !d.digits() {
			return false, errSyntax
		}
	}
	return integer, nil
}

func (d *decoder) digits() bool {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

func (d *decoder) literal(lit string) error {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return errSyntax
	}
	d.i += len(lit)
	return nil
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// skip reads and discards one value of any type, checking its syntax.
// depth is the nesting level of the value.
func (d *decoder) skip(depth int) error {
	if depth > maxJSONDepth {
		return malformed(fmt.Sprintf("request body nests deeper than %d levels", maxJSONDepth))
	}
	d.ws()
	if d.i >= len(d.b) {
		return errSyntax
	}
	switch c := d.b[d.i]; {
	case c == '"':
		_, err := d.rawString()
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		_, err := d.number()
		return err
	case c == '{':
		d.i++
		for first := true; ; first = false {
			_, more, err := d.key(first)
			if err != nil || !more {
				return err
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == '[':
		d.i++
		for first := true; ; first = false {
			d.ws()
			if d.i >= len(d.b) {
				return errSyntax
			}
			if d.b[d.i] == ']' {
				d.i++
				return nil
			}
			if !first {
				if d.b[d.i] != ',' {
					return errSyntax
				}
				d.i++
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	}
	return errSyntax
}

// rawString reads a JSON string at d.i and returns its content: a slice of
// the body when it holds no escapes, else the unescaped bytes in scratch
// (valid until the next call). Lone surrogates become U+FFFD, as
// encoding/json does.
func (d *decoder) rawString() ([]byte, error) {
	b := d.b
	d.i++ // opening quote
	start := d.i
	for d.i < len(b) {
		c := b[d.i]
		switch {
		case c == '"':
			s := b[start:d.i]
			d.i++
			return s, nil
		case c == '\\':
			return d.escapedString(start)
		case c < 0x20:
			return nil, errSyntax
		}
		d.i++
	}
	return nil, errSyntax
}

func (d *decoder) escapedString(start int) ([]byte, error) {
	b := d.b
	out := append(d.scratch[:0], b[start:d.i]...)
	for d.i < len(b) {
		c := b[d.i]
		switch {
		case c == '"':
			d.i++
			d.scratch = out
			return out, nil
		case c < 0x20:
			return nil, errSyntax
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(b) {
			return nil, errSyntax
		}
		esc := b[d.i+1]
		d.i += 2
		switch esc {
		case '"', '\\', '/':
			out = append(out, esc)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return nil, errSyntax
			}
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if d.i+1 < len(b) && b[d.i] == '\\' && b[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					lo, ok := d.hex4()
					if !ok {
						return nil, errSyntax
					}
					if dec := utf16.DecodeRune(r, lo); dec != utf8.RuneError {
						r2 = dec
					} else {
						d.i = save
					}
				}
				r = r2
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, errSyntax
		}
	}
	return nil, errSyntax
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		v, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	d.i += 4
	return r, true
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
