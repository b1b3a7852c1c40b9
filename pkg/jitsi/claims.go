package jitsi

import (
	"strconv"
	"unicode/utf8"
)

// ModeratorForm selects how context.user.moderator is written.
type ModeratorForm int

const (
	// ModeratorString writes "true" or "false", as 8x8 JaaS documents it and
	// as jitsi-meet's token_affiliation plugin also accepts.
	ModeratorString ModeratorForm = iota
	// ModeratorBool writes a JSON boolean.
	ModeratorBool
)

// Claims is the payload of a Jitsi token. Times are Unix seconds.
type Claims struct {
	Audience  string
	Issuer    string
	Subject   string
	Room      string
	ExpiresAt int64
	NotBefore int64
	IssuedAt  int64
	ID        string
	User      UserClaims
	// ModeratorForm selects the form of User.Moderator in JSON.
	ModeratorForm ModeratorForm
	// TopLevelModerator also writes a top-level boolean "moderator", which
	// the third-party token_moderation Prosody plugin reads.
	TopLevelModerator bool
	// Features is context.features; it is left out when no feature is set.
	Features Features
}

// UserClaims is context.user: who joins, and whether as moderator.
type UserClaims struct {
	ID          string
	Name        string
	Email       string
	Avatar      string
	Moderator   bool
	Affiliation string
	// LobbyBypass and SecurityBypass are written as booleans when true
	// (the lobby_bypass and security_bypass Prosody plugins).
	LobbyBypass    bool
	SecurityBypass bool
}

// AppendJSON appends the claims as a JSON object to dst. The field order is
// fixed, exp, nbf and iat are numbers, and optional user fields are left out
// when empty. Features follow in a fixed order.
func (c *Claims) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"aud":`...)
	dst = appendJSONString(dst, c.Audience)
	dst = append(dst, `,"iss":`...)
	dst = appendJSONString(dst, c.Issuer)
	dst = append(dst, `,"sub":`...)
	dst = appendJSONString(dst, c.Subject)
	dst = append(dst, `,"room":`...)
	dst = appendJSONString(dst, c.Room)
	dst = append(dst, `,"exp":`...)
	dst = strconv.AppendInt(dst, c.ExpiresAt, 10)
	dst = append(dst, `,"nbf":`...)
	dst = strconv.AppendInt(dst, c.NotBefore, 10)
	dst = append(dst, `,"iat":`...)
	dst = strconv.AppendInt(dst, c.IssuedAt, 10)
	dst = append(dst, `,"jti":`...)
	dst = appendJSONString(dst, c.ID)
	dst = append(dst, `,"context":{"user":{`...)
	if c.User.ID != "" {
		dst = append(dst, `"id":`...)
		dst = appendJSONString(dst, c.User.ID)
		dst = append(dst, ',')
	}
	dst = append(dst, `"name":`...)
	dst = appendJSONString(dst, c.User.Name)
	if c.User.Email != "" {
		dst = append(dst, `,"email":`...)
		dst = appendJSONString(dst, c.User.Email)
	}
	if c.User.Avatar != "" {
		dst = append(dst, `,"avatar":`...)
		dst = appendJSONString(dst, c.User.Avatar)
	}
	dst = append(dst, `,"moderator":`...)
	if c.ModeratorForm == ModeratorBool {
		dst = strconv.AppendBool(dst, c.User.Moderator)
	} else {
		dst = append(dst, '"')
		dst = strconv.AppendBool(dst, c.User.Moderator)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"affiliation":`...)
	dst = appendJSONString(dst, c.User.Affiliation)
	if c.User.LobbyBypass {
		dst = append(dst, `,"lobby_bypass":true`...)
	}
	if c.User.SecurityBypass {
		dst = append(dst, `,"security_bypass":true`...)
	}
	dst = append(dst, '}')
	if !c.Features.IsZero() {
		dst = append(dst, `,"features":`...)
		dst = appendFeatures(dst, c.Features)
	}
	dst = append(dst, '}')
	if c.TopLevelModerator {
		dst = append(dst, `,"moderator":`...)
		dst = strconv.AppendBool(dst, c.User.Moderator)
	}
	return append(dst, '}')
}

// AppendJSONString appends s to dst as a JSON string literal, escaped as
// the claims are.
func AppendJSONString(dst []byte, s string) []byte { return appendJSONString(dst, s) }

// jsonSafe marks the ASCII bytes a JSON string holds as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// control characters and U+2028/U+2029 are escaped, everything else is
// written as is.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Runs of safe ASCII, the bulk of every token and URL, are copied
		// whole.
		for i < len(s) && s[i] < utf8.RuneSelf && jsonSafe[s[i]] {
			i++
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			start = i + size
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&15])
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
