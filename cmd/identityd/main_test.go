package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its tests: every daemon a test starts must stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
