package store

import (
	"errors"
	"strings"
	"time"
)

// APIVersion is the account default API version: the one a request without a Stripe-Version header, an
// event as stored, and a webhook endpoint created without api_version are rendered with. It is stripe-go
// v85's pinned version, so the SDK the project tests with sees its own version.
const APIVersion = "2026-03-25.dahlia"

// Errors of ParseAPIVersion.
var (
	// ErrAPIVersionMalformed: not of the form YYYY-MM-DD or YYYY-MM-DD.name with a real calendar date.
	ErrAPIVersionMalformed = errors.New("api version malformed")
	// ErrAPIVersionUnknown: well formed, but not a version Stripe published.
	ErrAPIVersionUnknown = errors.New("api version unknown")
)

// PublishedAPIVersions are the Stripe API versions identityd knows were published, oldest first. The named
// ones (YYYY-MM-DD.train, monthly since 2024-09-30.acacia) are complete up to the last: the official SDKs'
// changelogs record a pinned-version change for every one of them. The dated ones are complete from
// 2020-08-27, the version current when Identity launched; before that they are the versions an official SDK
// was pinned to. Sources: the changelogs of stripe-go v85.0.0 and of the stripe npm package 23.1.0 (which
// pins 2026-10-28.endive), and the OpenAPI spec versions of stripe-mock releases.
var PublishedAPIVersions = []string{
	"2014-12-17", "2015-02-18", "2016-03-07", "2016-07-06", "2017-04-06", "2018-02-06", "2018-07-27",
	"2018-08-23", "2018-09-24", "2018-11-08", "2019-02-11", "2019-02-19", "2019-03-14", "2019-05-16",
	"2019-08-14", "2019-09-09", "2019-10-08", "2019-10-17", "2019-11-05", "2019-12-03", "2020-03-02",
	"2020-08-27", "2022-08-01", "2022-11-15", "2023-08-16", "2023-10-16", "2024-04-10", "2024-06-20",
	"2024-09-30.acacia", "2024-10-28.acacia", "2024-11-20.acacia", "2024-12-18.acacia", "2025-01-27.acacia",
	"2025-02-24.acacia",
	"2025-03-31.basil", "2025-04-30.basil", "2025-05-28.basil", "2025-06-30.basil", "2025-07-30.basil",
	"2025-08-27.basil",
	"2025-09-30.clover", "2025-10-29.clover", "2025-11-17.clover", "2025-12-15.clover", "2026-01-28.clover",
	"2026-02-25.clover",
	"2026-03-25.dahlia", "2026-04-22.dahlia", "2026-05-27.dahlia", "2026-06-24.dahlia", "2026-07-29.dahlia",
	"2026-08-26.dahlia",
	"2026-09-30.endive", "2026-10-28.endive",
}

var publishedAPIVersion = func() map[string]bool {
	m := make(map[string]bool, len(PublishedAPIVersions))
	for _, v := range PublishedAPIVersions {
		m[v] = true
	}
	return m
}()

// maxTrainName bounds the release-train part of a version (Stripe's are short words).
const maxTrainName = 32

// ParseAPIVersion checks a requested API version (a Stripe-Version header or a webhook endpoint's
// api_version) and returns it as it is rendered. A published version is accepted. So is a version of the
// newest form dated after the newest version identityd knows, up to today (now), on the newest known release
// train or a later one: Stripe publishes one every month and an SDK newer than this build sends it, and the
// Identity objects have only ever grown by fields since, so the newest shape serves it. Any other
// well-formed version (a day Stripe published nothing, a wrong train, a dated version after 2024-06-20, a
// preview version) is unknown, and Stripe rejects those too.
func ParseAPIVersion(v string, now time.Time) (string, error) {
	date, train, named := strings.Cut(v, ".")
	day, err := time.Parse(time.DateOnly, date)
	if err != nil || len(date) != len(time.DateOnly) || (named && !validTrain(train)) {
		return "", ErrAPIVersionMalformed
	}
	if publishedAPIVersion[v] {
		return v, nil
	}
	newest := PublishedAPIVersions[len(PublishedAPIVersions)-1]
	newestDate, newestTrain, _ := strings.Cut(newest, ".")
	if named && train != "preview" && train >= newestTrain && date > newestDate &&
		!day.After(now.UTC().Truncate(24*time.Hour).Add(24*time.Hour)) {
		return v, nil
	}
	return "", ErrAPIVersionUnknown
}

// validTrain accepts a release-train name: 1–32 lowercase ASCII letters.
func validTrain(s string) bool {
	if s == "" || len(s) > maxTrainName {
		return false
	}
	for _, c := range s {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// In returns the event rendered for API version v (one that ParseAPIVersion accepted): its api_version
// names v. The session in data.object keeps its shape: no field of an Identity object differs between the
// published versions (each was added to every version at once), so one shape serves all of them; a field
// that ever needs gating by version is gated here.
func (e *Event) In(v string) *Event {
	out := *e
	out.APIVersion = v
	return &out
}
