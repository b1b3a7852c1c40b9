package jitsi

import (
	"strings"
)

// Feature is a key of context.features: a permission the Jitsi web client
// and Prosody read from the token.
type Feature uint8

// featureNames are the feature keys the Jitsi web client knows (and those
// 8x8 JaaS adds), in the fixed order tokens carry them.
var featureNames = [...]string{
	"branding",
	"calendar",
	"create-polls",
	"file-upload",
	"flip",
	"inbound-call",
	"list-visitors",
	"livestreaming",
	"lobby",
	"moderation",
	"outbound-call",
	"recording",
	"room",
	"screen-sharing",
	"send-groupchat",
	"sip-inbound-call",
	"sip-outbound-call",
	"transcription",
}

// FeatureNames returns every feature key a request may set, in token order.
func FeatureNames() []string { return append([]string(nil), featureNames[:]...) }

// String returns the feature's key.
func (f Feature) String() string {
	if int(f) < len(featureNames) {
		return featureNames[f]
	}
	return "unknown"
}

// ParseFeature returns the Feature named name.
func ParseFeature(name string) (Feature, bool) {
	for i, n := range featureNames {
		if n == name {
			return Feature(i), true
		}
	}
	return 0, false
}

// Features is a set of features, each enabled, disabled or left unset. The
// zero value sets none. It is a value type and never allocates.
type Features struct {
	set, on uint32
}

// With returns f with feature ft set to on.
func (f Features) With(ft Feature, on bool) Features {
	bit := uint32(1) << ft
	f.set |= bit
	if on {
		f.on |= bit
	} else {
		f.on &^= bit
	}
	return f
}

// Set sets the feature named name, or returns an *InputError with
// CodeUnknownFeature naming the field features.<name>.
func (f *Features) Set(name string, on bool) error {
	ft, ok := ParseFeature(name)
	if !ok {
		return inputErr("features."+truncate(name), CodeUnknownFeature,
			"features has no key %q; Jitsi knows %s", truncate(name), strings.Join(featureNames[:], ", "))
	}
	*f = f.With(ft, on)
	return nil
}

// Lookup reports whether ft is set, and if so whether it is enabled.
func (f Features) Lookup(ft Feature) (on, set bool) {
	bit := uint32(1) << ft
	return f.on&bit != 0, f.set&bit != 0
}

// Enabled returns the features f enables, in token order.
func (f Features) Enabled() []Feature {
	var out []Feature
	for ft := Feature(0); int(ft) < len(featureNames); ft++ {
		if on, set := f.Lookup(ft); set && on {
			out = append(out, ft)
		}
	}
	return out
}

// IsZero reports whether no feature is set.
func (f Features) IsZero() bool { return f.set == 0 }

// Over returns f with every feature it leaves unset taken from defaults.
func (f Features) Over(defaults Features) Features {
	unset := defaults.set &^ f.set
	return Features{set: f.set | unset, on: f.on | defaults.on&unset}
}

// JaaSFeatureDefaults are the features an 8x8 JaaS token always carries:
// JaaS requires context.features, and what a request leaves unset is off.
var JaaSFeatureDefaults = func() Features {
	var f Features
	for _, name := range []string{"livestreaming", "recording", "transcription", "inbound-call",
		"outbound-call", "sip-inbound-call", "sip-outbound-call"} {
		ft, _ := ParseFeature(name)
		f = f.With(ft, false)
	}
	return f
}()

// appendFeatures appends f as a JSON object with "true"/"false" string
// values, the form 8x8 JaaS documents and Prosody and the web client accept.
func appendFeatures(dst []byte, f Features) []byte {
	dst = append(dst, '{')
	first := true
	for i, name := range featureNames {
		on, set := f.Lookup(Feature(i))
		if !set {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, name...)
		if on {
			dst = append(dst, `":"true"`...)
		} else {
			dst = append(dst, `":"false"`...)
		}
	}
	return append(dst, '}')
}
