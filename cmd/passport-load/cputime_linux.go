package main

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU is the CPU time the calling OS thread has used, and whether this system can tell it. The caller
// locks itself to its thread.
func threadCPU() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// processCPU is the CPU time this process has used, and whether this system can tell it.
func processCPU() (time.Duration, bool) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// machineCPU is this machine's CPU time in all and the part of it the hypervisor gave to others (steal), from
// /proc/stat's first line, in its ticks; ok is false where it cannot be read.
func machineCPU() (total, steal uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	return parseProcStat(string(b))
}

// machineModel names this machine's processor from /proc/cpuinfo (see parseCPUInfo); empty where it cannot.
func machineModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	return parseCPUInfo(string(b))
}

// niceness is this process's nice value (-20 to 19: the higher, the later the kernel gives it a CPU when
// others want one), and whether this system can tell it.
func niceness() (int, bool) {
	// The system call answers 20 - nice (1 to 40), not the nice value of the C library's getpriority.
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0, false
	}
	return 20 - p, true
}
