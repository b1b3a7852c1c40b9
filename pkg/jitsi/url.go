package jitsi

import (
	"net/url"
	"strings"
	"unicode"
)

// MeetingURL is what the Jitsi web client reads from a meeting link.
type MeetingURL struct {
	// Host is the host (and port) the link leads to.
	Host string
	// Tenant is the lowercase path before the room, or "".
	Tenant string
	// Room is the room the client joins: the form a room claim must match.
	Room string
	// Token is the jwt parameter from the query or the fragment, or "".
	Token string
}

// ParseMeetingURL reads a meeting link the way the Jitsi web client does
// (jitsi-meet uri.ts, parseURIString and getBackendSafeRoomName): white
// space is dropped, the excluded characters are stripped from every path
// segment, the last segment is the room and the segments before it the
// tenant. The token is taken from ?jwt= or #jwt=.
func ParseMeetingURL(raw string) (MeetingURL, error) {
	raw = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, raw)
	u, err := url.Parse(raw)
	if err != nil {
		return MeetingURL{}, err
	}
	path := u.EscapedPath()
	parts := strings.Split(path, "/")
	for i, p := range parts {
		parts[i] = stripExcluded(p)
	}
	path = strings.Join(parts, "/")
	m := MeetingURL{Host: u.Host}
	end := strings.LastIndexByte(path, '/')
	if room := path[end+1:]; room != "" {
		m.Room = ClientRoomName(room)
	}
	if end > 1 {
		m.Tenant = strings.ToLower(path[1:end])
	}
	m.Token = u.Query().Get("jwt")
	if m.Token == "" && u.Fragment != "" {
		if q, err := url.ParseQuery(u.EscapedFragment()); err == nil {
			m.Token = q.Get("jwt")
		}
	}
	return m, nil
}
