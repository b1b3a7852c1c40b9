package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/jitsi-signer/jitsi-signer/pkg/config"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
)

const verifyUsage = `Usage: jitsi-signer verify [flags] <token or meeting URL>
       jitsi-signer verify [flags] < token-or-url

Checks a Jitsi token offline, the way Prosody's token plugins do: the header (alg, typ "JWT"),
the signature, iss, aud, sub, the room, exp and nbf (with no leeway), and the moderator rights
and features as Jitsi reads them. Given a meeting URL, it also checks that the room and tenant
the web client derives from the URL match the token. With no argument, or "-", it reads the
token or URL from standard input, which keeps tokens out of shell history.

The signature is checked with the HMAC secret of the configuration (JITSI_API_KEY or
JITSI_API_KEY_FILE, algorithm JITSI_SIGNING_ALG), or with an RSA public key from -key-file
or -jwks. iss, aud and sub are compared with JITSI_APP_ID, JITSI_AUDIENCE and JITSI_SUBJECT.

Prints one line per check and a verdict; exits 0 when the token is valid, 1 when not.
The secret and the token's signature are never printed.
`

// errTokenInvalid ends a verify run whose verdict is "not valid".
var errTokenInvalid = errors.New("verify: the token is not valid")

// knownFeatures are the context.features keys the Jitsi web client, JaaS and
// Prosody know: those the service issues, and two that only Prosody reads.
var knownFeatures = append(jitsi.FeatureNames(), "live-translation", "name-readonly")

// verifyOptions is what a token is checked against.
type verifyOptions struct {
	// secret and hmacAlg check HS* signatures.
	secret  []byte
	hmacAlg string
	// keyFile (PEM) or jwksFile hold RSA public keys for RS* signatures.
	keyFile  string
	jwksFile string
	// keyServer is an asap_key_server URL: the key for kid is fetched from
	// <keyServer>/<hex(sha256(kid))>.pem, as Prosody fetches it.
	keyServer string
	appID     string
	audience  string
	subject   string
	// wantModerator fails the token unless it makes the user owner.
	wantModerator bool
	now           time.Time
}

// check is one line of the verdict.
type check struct {
	name   string
	ok     bool
	reason string
}

func runVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", verifyUsage, stderr)
	keyFile := fs.String("key-file", "", "PEM file or http(s) URL with the RSA public key of RS256/RS384/RS512 tokens")
	jwksFile := fs.String("jwks", "", "JWKS file or http(s) URL with the RSA public keys of RS256/RS384/RS512 tokens, chosen by kid")
	keyServer := fs.String("key-server", "", "asap_key_server URL: fetch <URL>/<hex(sha256(kid))>.pem as Prosody does")
	wantModerator := fs.Bool("moderator", false, "also fail unless the token makes the user a moderator")
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usageError(stderr, "verify", "give one token or meeting URL")
	}
	if n := countSet(*keyFile, *jwksFile, *keyServer); n > 1 {
		return usageError(stderr, "verify", "give one of -key-file, -jwks and -key-server")
	}
	input := fs.Arg(0)
	if input == "" || input == "-" {
		raw, err := io.ReadAll(io.LimitReader(stdin, 64<<10))
		if err != nil {
			return fmt.Errorf("verify: reading standard input: %w", err)
		}
		input = string(raw)
	}
	input = strings.TrimSpace(input)
	if input == "" {
		return usageError(stderr, "verify", "no token or meeting URL given")
	}

	cfg, err := config.Load()
	if err != nil {
		return &configError{err: err}
	}
	o := verifyOptions{
		secret: cfg.Secret, hmacAlg: cfg.SigningAlg, keyFile: *keyFile, jwksFile: *jwksFile, keyServer: *keyServer,
		appID: cfg.AppID, audience: cfg.Audience, subject: cfg.Subject, wantModerator: *wantModerator,
		now: time.Now(),
	}
	checks, verdict, err := verifyToken(input, o)
	if err != nil {
		return err
	}
	failed := 0
	for _, c := range checks {
		status := "ok"
		if !c.ok {
			status = "FAIL"
			failed++
		}
		fmt.Fprintf(stdout, "%-4s  %-9s  %s\n", status, c.name, c.reason)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "NOT VALID: %d of %d checks failed\n", failed, len(checks))
		return errTokenInvalid
	}
	fmt.Fprintf(stdout, "VALID: %s\n", verdict)
	return nil
}

// verifyToken checks a token or meeting URL. It returns the checks and,
// for a valid token, what it grants; an error only when the input is not a
// token at all.
func verifyToken(input string, o verifyOptions) ([]check, string, error) {
	var meeting *jitsi.MeetingURL
	token := input
	if l := strings.ToLower(input); strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://") {
		m, err := jitsi.ParseMeetingURL(input)
		if err != nil {
			return nil, "", errors.New("verify: the meeting URL does not parse")
		}
		if m.Token == "" {
			return nil, "", errors.New("verify: the meeting URL carries no token (?jwt= or #jwt=)")
		}
		meeting, token = &m, m.Token
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, "", fmt.Errorf("verify: the token has %d parts; a JWT is header.payload.signature", len(parts))
	}
	header, err := decodePart(parts[0])
	if err != nil {
		return nil, "", fmt.Errorf("verify: the header is not base64url JSON: %w", err)
	}
	claims, err := decodePart(parts[1])
	if err != nil {
		return nil, "", fmt.Errorf("verify: the payload is not base64url JSON: %w", err)
	}

	var checks []check
	add := func(name string, ok bool, format string, args ...any) {
		checks = append(checks, check{name: name, ok: ok, reason: fmt.Sprintf(format, args...)})
	}

	alg, _ := header["alg"].(string)
	kid, _ := header["kid"].(string)
	okHeader, why := checkHeader(header, o)
	add("header", okHeader, "%s", why)
	okSig, why := checkSignature(token, alg, kid, o)
	add("signature", okSig, "%s", why)

	checkStringClaim(add, claims, "iss", o.appID, "JITSI_APP_ID", "Prosody's app_id or one of its accepted issuers")
	checkAudience(add, claims, o.audience)
	checkSubject(add, claims, meeting, o.subject)
	room := checkRoom(add, claims, meeting)
	checkTimes(add, claims, o.now)
	owner := checkModerator(add, claims, o.wantModerator)
	checkFeatures(add, claims)

	role := "member"
	if owner {
		role = "moderator (owner)"
	}
	verdict := fmt.Sprintf("Prosody lets this user into room %q as %s", room, role)
	if meeting != nil {
		verdict += " through " + meeting.Host
	}
	return checks, verdict, nil
}

// decodePart decodes one base64url JSON object, numbers kept as written so
// that strings and numbers stay apart.
func decodePart(s string) (map[string]any, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("bad base64url")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

func checkHeader(h map[string]any, o verifyOptions) (bool, string) {
	alg, ok := h["alg"].(string)
	if !ok {
		return false, "alg is missing"
	}
	typ, hasTyp := h["typ"]
	desc := "alg " + alg
	if kid, ok := h["kid"].(string); ok {
		desc += ", kid " + strconv.Quote(kid)
	}
	switch {
	case !hasTyp:
		return false, desc + `; typ is missing: Prosody wants exactly "JWT"`
	case typ != "JWT":
		return false, fmt.Sprintf(`%s; typ is %v: Prosody wants exactly "JWT"`, desc, jsonText(typ))
	}
	desc += ", typ JWT"
	switch {
	case o.keyFile != "" || o.jwksFile != "" || o.keyServer != "":
		if alg != "RS256" && alg != "RS384" && alg != "RS512" {
			return false, desc + "; a public key checks RS256, RS384 or RS512 tokens only"
		}
	case len(o.secret) > 0:
		if alg != o.hmacAlg {
			return false, fmt.Sprintf("%s; Prosody is configured for %s (JITSI_SIGNING_ALG)", desc, o.hmacAlg)
		}
	default:
		if !slices.Contains([]string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512"}, alg) {
			return false, desc + "; Jitsi accepts HS256/384/512 and RS256/384/512 only"
		}
	}
	return true, desc
}

func checkSignature(token, alg, kid string, o verifyOptions) (bool, string) {
	switch {
	case o.keyFile != "" || o.jwksFile != "" || o.keyServer != "":
		key, source, err := publicKey(o, kid)
		if err != nil {
			return false, err.Error()
		}
		sa, ok := jwa.LookupSignatureAlgorithm(alg)
		if !ok || !strings.HasPrefix(alg, "RS") {
			return false, fmt.Sprintf("not checked: %q is not an RSA algorithm", alg)
		}
		if _, err := jws.Verify([]byte(token), jws.WithKey(sa, key)); err != nil {
			return false, fmt.Sprintf("does not verify with the public key from %s: the key is not the signer's, or the token was altered", source)
		}
		return true, fmt.Sprintf("%s, with the public key from %s", alg, source)
	case len(o.secret) > 0:
		sa, _ := jwa.LookupSignatureAlgorithm(o.hmacAlg)
		if _, err := jws.Verify([]byte(token), jws.WithKey(sa, []byte(o.secret))); err != nil {
			return false, fmt.Sprintf("does not verify as %s with the configured secret: the secret differs from Prosody's app_secret, or the token was altered", o.hmacAlg)
		}
		return true, o.hmacAlg + ", with the configured secret"
	}
	return false, "not checked: no key; set JITSI_API_KEY or JITSI_API_KEY_FILE, or give -key-file or -jwks"
}

// publicKey reads the RSA public key to check an RS* token with.
func publicKey(o verifyOptions, kid string) (jwk.Key, string, error) {
	if o.keyServer != "" {
		sum := sha256.Sum256([]byte(kid))
		o.keyFile = strings.TrimSuffix(o.keyServer, "/") + "/" + hex.EncodeToString(sum[:]) + ".pem"
	}
	if o.keyFile != "" {
		data, err := readSource(o.keyFile)
		if err != nil {
			return nil, "", fmt.Errorf("not checked: -key-file %s cannot be read", o.keyFile)
		}
		key, err := jwk.ParseKey(data, jwk.WithPEM(true))
		if err != nil || key.KeyType() != jwa.RSA() {
			return nil, "", fmt.Errorf("not checked: -key-file %s holds no RSA key in PEM", o.keyFile)
		}
		pub, err := jwk.PublicKeyOf(key)
		if err != nil {
			return nil, "", fmt.Errorf("not checked: -key-file %s: no public key", o.keyFile)
		}
		return pub, o.keyFile, nil
	}
	data, err := readSource(o.jwksFile)
	if err != nil {
		return nil, "", fmt.Errorf("not checked: -jwks %s cannot be read", o.jwksFile)
	}
	set, err := jwk.Parse(data)
	if err != nil {
		return nil, "", fmt.Errorf("not checked: -jwks %s is not a JWK set", o.jwksFile)
	}
	var key jwk.Key
	if k, ok := set.LookupKeyID(kid); kid != "" && ok {
		key = k
	} else if set.Len() == 1 {
		key, _ = set.Key(0)
	} else {
		return nil, "", fmt.Errorf("not checked: -jwks %s has no key with kid %q", o.jwksFile, kid)
	}
	if key.KeyType() != jwa.RSA() {
		return nil, "", fmt.Errorf("not checked: the key for kid %q in %s is not RSA", kid, o.jwksFile)
	}
	pub, err := jwk.PublicKeyOf(key)
	if err != nil {
		return nil, "", fmt.Errorf("not checked: -jwks %s: no public key", o.jwksFile)
	}
	return pub, o.jwksFile + " (kid " + strconv.Quote(kid) + ")", nil
}

type addFunc func(name string, ok bool, format string, args ...any)

func checkStringClaim(add addFunc, claims map[string]any, name, want, variable, what string) {
	v, present := claims[name]
	s, isString := v.(string)
	switch {
	case !present:
		add(name, false, "missing: Prosody requires %s", name)
	case !isString:
		add(name, false, "is %s, not a string", jsonText(v))
	case want == "":
		add(name, false, "%q, but %s is not set to compare with", s, variable)
	case s != want:
		add(name, false, "%q is not %s %q (%s)", s, variable, want, what)
	default:
		add(name, true, "%q", s)
	}
}

func checkAudience(add addFunc, claims map[string]any, want string) {
	if list, ok := claims["aud"].([]any); ok {
		add("aud", false, "is an array %s: Prosody compares aud as a plain string", jsonText(list))
		return
	}
	checkStringClaim(add, claims, "aud", want, "JITSI_AUDIENCE", "one of Prosody's accepted audiences")
}

func checkSubject(add addFunc, claims map[string]any, m *jitsi.MeetingURL, subject string) {
	v, present := claims["sub"]
	sub, isString := v.(string)
	switch {
	case !present:
		add("sub", false, `missing: current Prosody refuses the token ("sub claim is missing")`)
		return
	case !isString:
		add("sub", false, "is %s, not a string", jsonText(v))
		return
	case sub == "*":
		add("sub", true, `"*" (any tenant or domain)`)
		return
	}
	lower := strings.ToLower(sub)
	switch {
	case m != nil && m.Tenant != "":
		if lower != m.Tenant {
			add("sub", false, "%q, but the URL's tenant is %q: a tenant link needs sub = tenant", sub, m.Tenant)
			return
		}
		add("sub", true, "%q, the URL's tenant", sub)
	case strings.EqualFold(sub, subject):
		add("sub", true, "%q (JITSI_SUBJECT)", sub)
	case m != nil:
		add("sub", false, "%q is neither JITSI_SUBJECT %q nor \"*\", and the URL has no tenant (with domain verification off, as in docker-jitsi-meet, Prosody does not compare sub)", sub, subject)
	default:
		if _, err := jitsi.Tenant(sub); err != nil || sub == "" {
			add("sub", false, "%q is neither JITSI_SUBJECT %q nor a tenant", sub, subject)
			return
		}
		add("sub", true, "%q, a tenant: the link must lead to https://<host>/%s/<room>", sub, lower)
	}
}

// checkRoom compares the room claim with the room the URL leads to, and
// returns the room for the verdict.
func checkRoom(add addFunc, claims map[string]any, m *jitsi.MeetingURL) string {
	v, present := claims["room"]
	claim, isString := v.(string)
	switch {
	case !present:
		add("room", false, "missing: Prosody requires the room claim")
		return ""
	case !isString:
		add("room", false, "is %s, not a string", jsonText(v))
		return ""
	case claim == "*":
		if m != nil {
			add("room", true, `"*" (every room), so also %q`, m.Room)
			return m.Room
		}
		add("room", true, `"*" (every room)`)
		return "*"
	}
	lower := strings.ToLower(claim)
	if joined := jitsi.ClientRoomName(lower); joined != lower {
		add("room", false, "%q is not the form the web client derives: a URL to it joins %q; sign the room as %q", claim, joined, joined)
		return claim
	}
	switch {
	case m == nil:
		add("room", true, "%q (give the meeting URL to compare it with the room the link leads to)", claim)
	case m.Room == "":
		add("room", false, "%q, but the URL names no room", claim)
	case m.Room != lower:
		add("room", false, "%q, but the URL leads to room %q", claim, m.Room)
	default:
		add("room", true, "%q, the room the URL leads to", claim)
	}
	return lower
}

// numericClaim reads a NumericDate claim: a JSON number.
func numericClaim(claims map[string]any, name string) (t time.Time, present bool, problem string) {
	v, present := claims[name]
	if !present {
		return time.Time{}, false, ""
	}
	n, ok := v.(json.Number)
	if !ok {
		if s, isString := v.(string); isString {
			return time.Time{}, true, fmt.Sprintf("is the string %q: Prosody refuses it; %s must be a JSON number", s, name)
		}
		return time.Time{}, true, fmt.Sprintf("is %s, not a number", jsonText(v))
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e12 {
		return time.Time{}, true, fmt.Sprintf("%s is not a Unix time", n)
	}
	return time.Unix(int64(f), 0).UTC(), true, ""
}

func checkTimes(add addFunc, claims map[string]any, now time.Time) {
	now = now.Truncate(time.Second)
	clock := "this machine's clock: " + now.UTC().Format(time.RFC3339)
	exp, present, problem := numericClaim(claims, "exp")
	switch {
	case problem != "":
		add("exp", false, "%s", problem)
	case !present:
		add("exp", false, "missing: always send exp")
	case !now.Before(exp):
		add("exp", false, "expired %s ago, at %s (%s)", now.Sub(exp), exp.Format(time.RFC3339), clock)
	default:
		add("exp", true, "expires in %s, at %s", exp.Sub(now), exp.Format(time.RFC3339))
	}
	nbf, present, problem := numericClaim(claims, "nbf")
	switch {
	case problem != "":
		add("nbf", false, "%s", problem)
	case !present:
		add("nbf", true, "absent: Prosody accepts that; older web clients refuse a token without nbf")
	case now.Before(nbf):
		add("nbf", false, "%s in the future, at %s (%s): Prosody checks with no leeway; backdate nbf (JITSI_CLOCK_SKEW) or fix the clocks",
			nbf.Sub(now), nbf.Format(time.RFC3339), clock)
	default:
		add("nbf", true, "valid since %s, %s ago", nbf.Format(time.RFC3339), now.Sub(nbf))
	}
	iat, present, problem := numericClaim(claims, "iat")
	switch {
	case problem != "":
		add("iat", false, "%s", problem)
	case !present:
	case iat.After(now):
		add("iat", true, "issued %s in the future by this clock (%s): the clocks differ by at least that", iat.Sub(now), clock)
	default:
		add("iat", true, "issued %s ago, at %s", now.Sub(iat), iat.Format(time.RFC3339))
	}
}

// checkModerator reads the moderator rights as jitsi-meet's
// mod_token_affiliation does: owner when context.user.affiliation is owner,
// moderator or teacher, or context.user.moderator is true or "true".
func checkModerator(add addFunc, claims map[string]any, want bool) bool {
	user := userClaims(claims)
	aff, _ := user["affiliation"].(string)
	mod, hasMod := user["moderator"]
	switch {
	case aff == "owner" || aff == "moderator" || aff == "teacher":
		add("moderator", true, "owner: context.user.affiliation is %q", aff)
		return true
	case mod == true || mod == "true":
		add("moderator", true, "owner: context.user.moderator is %s", jsonText(mod))
		return true
	}
	var why string
	switch {
	case hasMod && mod != false && mod != "false":
		why = fmt.Sprintf("context.user.moderator is %s, which token_affiliation does not read as true (only true or \"true\")", jsonText(mod))
	case aff != "" && aff != "member":
		why = fmt.Sprintf("context.user.affiliation %q is not owner, moderator or teacher", aff)
	case claims["moderator"] == true:
		why = "only the top-level moderator claim is set, which the third-party token_moderation plugin reads, not token_affiliation"
		if !want {
			add("moderator", true, "member for token_affiliation; %s", why)
			return false
		}
	case hasMod || aff != "":
		why = fmt.Sprintf("context.user.moderator %s, affiliation %q", jsonText(mod), aff)
	default:
		why = "no context.user.moderator or affiliation"
	}
	if want || strings.Contains(why, "does not read") || strings.Contains(why, "is not owner") {
		add("moderator", false, "member, not moderator: %s", why)
		return false
	}
	add("moderator", true, "member: %s", why)
	return false
}

func checkFeatures(add addFunc, claims map[string]any) {
	ctx, _ := claims["context"].(map[string]any)
	v, present := ctx["features"]
	if !present {
		add("features", true, "none: moderators get every feature")
		return
	}
	features, ok := v.(map[string]any)
	if !ok {
		add("features", false, "context.features is %s, not an object", jsonText(v))
		return
	}
	var on, off, unknown []string
	for k, v := range features {
		switch {
		case !slices.Contains(knownFeatures, k):
			unknown = append(unknown, k)
		case v == true || v == "true":
			on = append(on, k)
		default:
			off = append(off, k)
		}
	}
	sort.Strings(on)
	sort.Strings(off)
	sort.Strings(unknown)
	desc := fmt.Sprintf("enabled: %s; disabled: %s", listOrNone(on), listOrNone(off))
	if len(unknown) > 0 {
		add("features", false, "unknown %s (the web client reports an invalid feature); %s", strings.Join(unknown, ", "), desc)
		return
	}
	add("features", true, "%s", desc)
}

func userClaims(claims map[string]any) map[string]any {
	ctx, _ := claims["context"].(map[string]any)
	user, _ := ctx["user"].(map[string]any)
	return user
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// jsonText shows a claim value as JSON, shortened.
func jsonText(v any) string {
	if v == nil {
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

// readSource reads a key file, or fetches it when it is an http(s) URL.
func readSource(src string) ([]byte, error) {
	if !strings.HasPrefix(src, "https://") && !strings.HasPrefix(src, "http://") {
		return os.ReadFile(src)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(src)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d", src, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

func countSet(values ...string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}
