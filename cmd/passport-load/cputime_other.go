//go:build !linux

package main

import "time"

// threadCPU cannot tell a thread's CPU time here: signatures are timed by the wall clock alone.
func threadCPU() (time.Duration, bool) { return 0, false }

// processCPU cannot tell this process's CPU time here.
func processCPU() (time.Duration, bool) { return 0, false }

// machineCPU cannot tell the machine's stolen CPU time here.
func machineCPU() (total, steal uint64, ok bool) { return 0, 0, false }

// machineModel cannot name this machine's processor here.
func machineModel() string { return "" }

// niceness cannot tell this process's nice value here.
func niceness() (int, bool) { return 0, false }
