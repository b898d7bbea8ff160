package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/identityd/identityd/store"
)

// versionHeader is the request header that picks the API version, and the response header that names the
// version used.
const versionHeader = "Stripe-Version"

// requestVersion reads the Stripe-Version header: the version to render the response with, the account
// default without one. Two headers, or one naming a malformed or unpublished version, is a 400 that never
// echoes the value.
func (s *Server) requestVersion(r *http.Request) (string, *Error) {
	values := r.Header.Values(versionHeader)
	switch len(values) {
	case 0:
		return store.APIVersion, nil
	case 1:
	default:
		return "", versionError(versionHeader, "Invalid Stripe API version: send one Stripe-Version header.")
	}
	v, err := store.ParseAPIVersion(strings.TrimSpace(values[0]), s.cfg.Store.Now())
	if err != nil {
		return "", versionError(versionHeader, "Invalid Stripe API version in the Stripe-Version header: "+versionProblem(err))
	}
	return v, nil
}

// readAPIVersion reads a webhook endpoint's api_version: a published Stripe API version, as for
// Stripe-Version.
func (s *Server) readAPIVersion(f *Form) (*string, error) {
	raw, err := f.String("api_version")
	if err != nil || raw == nil {
		return nil, err
	}
	v, vErr := store.ParseAPIVersion(*raw, s.cfg.Store.Now())
	if vErr != nil {
		return nil, invalidParam("api_version", "parameter_invalid", "Invalid api_version: "+versionProblem(vErr))
	}
	return &v, nil
}

// versionProblem words why ParseAPIVersion refused a version.
func versionProblem(err error) string {
	newest := store.PublishedAPIVersions[len(store.PublishedAPIVersions)-1]
	if errors.Is(err, store.ErrAPIVersionMalformed) {
		return "expected a version such as " + store.APIVersion + " (YYYY-MM-DD or YYYY-MM-DD.name)."
	}
	return "it is not a published Stripe API version (the newest this server knows is " + newest + ")."
}

func versionError(param, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: msg, Param: param}
}
