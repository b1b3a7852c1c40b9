package jitsi

// Code is a stable, machine-readable reason why a link request was refused.
type Code string

// The codes an InputError carries.
const (
	CodeMissingField    Code = "missing_field"
	CodeInvalidField    Code = "invalid_field"
	CodeTooLong         Code = "too_long"
	CodeInvalidRole     Code = "invalid_role"
	CodeInvalidTenant   Code = "invalid_tenant"
	CodeRoomNotJoinable Code = "room_not_joinable"
	CodeTTLOutOfRange   Code = "ttl_out_of_range"
	CodeUnknownFeature  Code = "unknown_feature"
)

// InputError reports a link request that is well-formed but not acceptable:
// a missing name, a room Jitsi cannot join, a TTL out of range. Field names
// the request field in its JSON form (for example "user.name").
type InputError struct {
	Field   string
	Code    Code
	Message string
}

func (e *InputError) Error() string { return e.Message }
