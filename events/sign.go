package events

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// SecretPrefix starts every endpoint signing secret.
const SecretPrefix = "whsec_"

// NewSecret returns a fresh signing secret: "whsec_" and the standard base64 of 24 random bytes. Stripe
// receivers use the whole string as the HMAC key; Standard Webhooks receivers base64-decode the part after
// the prefix — one secret serves both.
func NewSecret() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error()) // the OS random source failing is not recoverable
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// StripeSignature returns the Stripe-Signature header value for body sent at unix time t:
// "t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>", what stripe-go's webhook.ConstructEvent verifies.
func StripeSignature(secret string, t int64, body []byte) string {
	return StripeSignatures([]string{secret}, t, body)
}

// StripeSignatures is StripeSignature with one v1 per secret, in order: "t=<t>,v1=<new>,v1=<old>", as Stripe
// signs while a rolled secret expires. A receiver accepts the delivery when any v1 matches its secret.
func StripeSignatures(secrets []string, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, secret := range secrets {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts))
		mac.Write([]byte("."))
		mac.Write(body)
		b.WriteString(",v1=" + hex.EncodeToString(mac.Sum(nil)))
	}
	return b.String()
}

// StandardSignatures is StandardSignature with one signature per secret, in order and separated by spaces
// ("v1,<new> v1,<old>"), as the Standard Webhooks spec lists several. A secret that is not "whsec_<base64>"
// is an error.
func StandardSignatures(secrets []string, id string, t int64, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, secret := range secrets {
		sig, err := StandardSignature(secret, id, t, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// StandardSignature returns the Standard Webhooks `webhook-signature` value for message id sent at unix
// time t: "v1,<base64 HMAC-SHA256(key, "<id>.<t>.<body>")>", the key being the base64-decoded part of the
// secret after "whsec_".
func StandardSignature(secret, id string, t int64, body []byte) (string, error) {
	raw, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return "", errors.New("signing secret does not start with " + SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return "", errors.New("signing secret is not base64 after " + SecretPrefix)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(t, 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}
