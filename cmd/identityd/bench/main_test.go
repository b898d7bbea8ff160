package bench

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its tests: the bench's API server, worker and clients
// must all be stopped when a run ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
