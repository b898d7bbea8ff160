package api

import (
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/identityd/identityd/store"
)

// Error is a Stripe-shaped API error. Messages never echo parameter values: a value may be personal data.
type Error struct {
	Status  int    `json:"-"`
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

// Error implements error.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// maxEcho bounds, in characters, how much of a client's parameter name an error repeats.
const maxEcho = 100

// clip cuts s to maxEcho characters, marking the cut with an ellipsis.
func clip(s string) string {
	if len(s) <= maxEcho || utf8.RuneCountInString(s) <= maxEcho {
		return s
	}
	n := 0
	for i := range s {
		if n == maxEcho {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// bounded returns e with the parameter it names cut to maxEcho characters, in param and in the message, so
// an error never grows with a client's parameter name.
func (e *Error) bounded() *Error {
	short := clip(e.Param)
	if short == e.Param {
		return e
	}
	out := *e
	out.Message = strings.ReplaceAll(out.Message, e.Param, short)
	out.Param = short
	return &out
}

func invalidParam(param, code, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: code, Message: msg, Param: param}
}

func unknownParam(param string) *Error {
	return invalidParam(param, "parameter_unknown", "Received unknown parameter: "+param)
}

func missingParam(param string) *Error {
	return invalidParam(param, "parameter_missing", "Missing required param: "+param+".")
}

func resourceMissing(kind, param string) *Error {
	return &Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "resource_missing",
		Message: "No such " + kind + ".", Param: param}
}

func transitionInvalid(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "status_transition_invalid", Message: msg}
}

var (
	errUnauthorized = &Error{Status: http.StatusUnauthorized, Type: "invalid_request_error",
		Message: "Invalid API Key provided. Send it as 'Authorization: Bearer sk_...' or as the Basic auth user name."}
	errTooLarge = &Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error",
		Code: "request_too_large", Message: "The request body is larger than 1 MiB."}
	errInternal = &Error{Status: http.StatusInternalServerError, Type: "api_error",
		Message: "An internal error occurred; the request may be retried."}
	errContention = &Error{Status: http.StatusTooManyRequests, Type: "invalid_request_error", Code: "lock_timeout",
		Message: "This object is being changed by another request; please retry."}
	errRateLimit = &Error{Status: http.StatusTooManyRequests, Type: "invalid_request_error", Code: "rate_limit",
		Message: "Too many requests hit the API too quickly."}
	errIdempotencyInUse = &Error{Status: http.StatusConflict, Type: "invalid_request_error", Code: "idempotency_key_in_use",
		Message: "There is currently another in-progress request using this Idempotent Key; please retry later."}
	errIdempotencyMismatch = &Error{Status: http.StatusBadRequest, Type: "idempotency_error",
		Message: "Keys for idempotent requests can only be used with the same parameters they were first used with."}
)

// toAPIError maps every error a handler can return to the one Stripe shape; this is the only place store
// errors become HTTP statuses. kind names the object for resource_missing.
func toAPIError(err error, kind string) *Error {
	var apiErr *Error
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.Is(err, store.ErrNotFound):
		return resourceMissing(kind, "id")
	case errors.Is(err, store.ErrInvalidTransition):
		return transitionInvalid("This " + kind + " cannot be changed in its current state.")
	case errors.Is(err, store.ErrTooManyMetadataKeys):
		return invalidParam("metadata", "parameter_invalid", "Invalid metadata: an object can have at most 50 keys.")
	case errors.Is(err, store.ErrConflict):
		return errContention
	default:
		return errInternal
	}
}
