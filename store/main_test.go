package store_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its tests: the shared request-log writers must end once
// nothing waits, and every test's Redis client and server must be closed by its cleanup.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
