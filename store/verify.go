package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Outcomes a test-mode submission can ask for.
const (
	OutcomeVerified      = "verified"
	OutcomeRequiresInput = "requires_input"
)

// Submission is what the end user handed in through the (simulated) hosted flow. It is stored once, beside the
// session, until the verify task turns it into a report; task payloads carry only its id.
type Submission struct {
	ID              string          `json:"id"`
	Outcome         string          `json:"outcome"`
	LastErrorCode   string          `json:"last_error_code,omitempty"`
	LastErrorReason *string         `json:"last_error_reason,omitempty"`
	VerifiedOutputs VerifiedOutputs `json:"verified_outputs"`
	Document        SubmittedDoc    `json:"document"`
}

// SubmittedDoc is the identity document as submitted.
type SubmittedDoc struct {
	Type           *string  `json:"type"`
	Number         *string  `json:"number"`
	IssuingCountry *string  `json:"issuing_country"`
	ExpirationDate *Date    `json:"expiration_date"`
	IssuedDate     *Date    `json:"issued_date"`
	Files          []string `json:"files"`
}

// Submit moves a session from requires_input to processing and stores the submission for the verify task.
func (s *Store) Submit(ctx context.Context, sc Scope, id string, sub *Submission, o Origin) (*Session, []*Event, error) {
	sub.ID = NewID("vsub")
	body, err := json.Marshal(sub)
	if err != nil {
		return nil, nil, err
	}
	return s.mutate(ctx, sc, id, o, func(stx *sessionTx) error {
		if stx.sess.Redacting() || stx.sess.Status != StatusRequiresInput {
			return ErrInvalidTransition
		}
		stx.sess.Status = StatusProcessing
		stx.sess.LastError = nil
		stx.later(func(ctx context.Context, pipe redis.Pipeliner) {
			pipe.Set(ctx, s.submissionKey(sc, id), EncodeDoc(body), 0)
			pipe.ZAdd(ctx, s.pendingVerificationsKey(sc), redis.Z{Score: float64(s.clock.Now().UnixMilli()), Member: id + "|" + sub.ID})
		})
		stx.emit(EventSessionProcessing)
		return nil
	})
}

// CompleteVerification turns the stored submission into a VerificationReport and moves the session to
// verified or back to requires_input. It is idempotent: once the submission is consumed (or the session was
// redacted meanwhile) it changes nothing. It returns the report it wrote, if any.
func (s *Store) CompleteVerification(ctx context.Context, sc Scope, id, submissionID string) (*Session, *Report, []*Event, error) {
	subKey := s.submissionKey(sc, id)
	var report *Report
	sess, events, err := s.mutate(ctx, sc, id, Origin{}, func(stx *sessionTx) error {
		report = nil
		stored, ok := stx.watched[0].(string) // the submission, read under WATCH with the session
		if !ok {
			stx.unchanged = true
			return stx.tx.ZRem(ctx, s.pendingVerificationsKey(sc), id+"|"+submissionID).Err()
		}
		var sub Submission
		raw, err := decodeDocString(stored)
		if err != nil {
			return fmt.Errorf("decode submission: %w", err)
		}
		if err := json.Unmarshal(raw, &sub); err != nil {
			return fmt.Errorf("decode submission: %w", err)
		}
		if stx.sess.Redacting() || stx.sess.Status != StatusProcessing || (submissionID != "" && sub.ID != submissionID) {
			stx.unchanged = true
			if stx.sess.Redacting() { // the data must not outlive the redaction request
				return stx.tx.Del(ctx, subKey).Err()
			}
			return nil // a stale task: a newer submission is pending, or this one is done
		}
		report = buildReport(stx.store.clock.Now().Unix(), sc, stx.sess, &sub)
		rbody, err := json.Marshal(report)
		if err != nil {
			return err
		}
		member := indexMember(report.Created, report.ID)
		stx.later(func(ctx context.Context, pipe redis.Pipeliner) {
			pipe.Set(ctx, s.reportKey(sc, report.ID), EncodeDoc(rbody), 0)
			pipe.ZAdd(ctx, s.reportIndexKey(sc), redis.Z{Member: member})
			pipe.ZAdd(ctx, s.sessionReportsKey(sc, id), redis.Z{Member: member})
			pipe.Del(ctx, subKey)
			pipe.ZRem(ctx, s.pendingVerificationsKey(sc), id+"|"+sub.ID)
		})
		stx.sess.LastVerificationReport = &report.ID
		if sub.Outcome == OutcomeVerified {
			vo := sub.VerifiedOutputs
			stx.sess.Status = StatusVerified
			stx.sess.VerifiedOutputs = &vo
			stx.sess.LastError = nil
			stx.emit(EventSessionVerified)
		} else {
			code := sub.LastErrorCode
			stx.sess.Status = StatusRequiresInput
			stx.sess.LastError = &LastError{Code: &code, Reason: sub.LastErrorReason}
			stx.emit(EventSessionRequiresInput)
		}
		return nil
	}, subKey)
	if err != nil {
		return nil, nil, nil, err
	}
	if events == nil {
		report = nil
	}
	return sess, report, events, nil
}

func buildReport(now int64, sc Scope, sess *Session, sub *Submission) *Report {
	status, checkErr := CheckVerified, (*CheckError)(nil)
	if sub.Outcome != OutcomeVerified {
		code := sub.LastErrorCode
		status, checkErr = CheckUnverified, &CheckError{Code: &code, Reason: sub.LastErrorReason}
	}
	vo := sub.VerifiedOutputs
	sid := sess.ID
	r := &Report{
		ID: NewID("vr"), Object: "identity.verification_report", ClientReferenceID: sess.ClientReferenceID,
		Created: now, Livemode: sc.Livemode, Options: sess.Options, Type: sess.Type, VerificationSession: &sid,
	}
	if sess.Type == "document" {
		r.Document = &DocumentReport{
			Address: vo.Address, Dob: vo.Dob, Error: checkErr, ExpirationDate: sub.Document.ExpirationDate,
			Files: sub.Document.Files, FirstName: vo.FirstName, IssuedDate: sub.Document.IssuedDate,
			IssuingCountry: sub.Document.IssuingCountry, LastName: vo.LastName, Number: sub.Document.Number,
			Sex: vo.Sex, Status: status, Type: sub.Document.Type, UnparsedPlaceOfBirth: vo.UnparsedPlaceOfBirth,
			UnparsedSex: vo.UnparsedSex,
		}
		if r.Document.Files == nil {
			r.Document.Files = []string{}
		}
	}
	doc := sess.Options != nil && sess.Options.Document != nil
	if sess.Type == "id_number" || (doc && sess.Options.Document.RequireIDNumber != nil && *sess.Options.Document.RequireIDNumber) {
		r.IDNumber = &IDNumberReport{Dob: vo.Dob, FirstName: vo.FirstName, IDNumber: vo.IDNumber,
			IDNumberType: vo.IDNumberType, LastName: vo.LastName, Status: status}
		if sess.Type == "id_number" {
			r.IDNumber.Error = checkErr
		}
	}
	if doc && sess.Options.Document.RequireMatchingSelfie != nil && *sess.Options.Document.RequireMatchingSelfie {
		var docFile *string
		if len(sub.Document.Files) > 0 {
			docFile = &sub.Document.Files[0]
		}
		selfie := "file_" + RandomString(24)
		r.Selfie = &SelfieReport{Document: docFile, Selfie: &selfie, Status: status}
	}
	return r
}

// PendingVerification is a submission waiting for its verify task.
type PendingVerification struct {
	SessionID, SubmissionID string
	SubmittedAtMillis       int64
}

// PendingVerifications returns up to limit submissions made at or before beforeMillis and not yet verified.
func (s *Store) PendingVerifications(ctx context.Context, sc Scope, beforeMillis, limit int64) ([]PendingVerification, error) {
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, s.pendingVerificationsKey(sc), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(beforeMillis, 10), Count: limit}).Result()
	if err != nil {
		return nil, fmt.Errorf("pending verifications: %w", err)
	}
	out := make([]PendingVerification, 0, len(zs))
	for _, z := range zs {
		member, _ := z.Member.(string)
		sid, sub, ok := strings.Cut(member, "|")
		if ok {
			out = append(out, PendingVerification{SessionID: sid, SubmissionID: sub, SubmittedAtMillis: int64(z.Score)})
		}
	}
	return out, nil
}
