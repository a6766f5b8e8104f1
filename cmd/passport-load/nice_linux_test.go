package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestNiceness: niceness reads this process's nice value as /proc/self/stat tells it, and a generator
// started with nice -n 7 reads 7 more.
func TestNiceness(t *testing.T) {
	got, ok := niceness()
	if !ok {
		t.Fatal("niceness: not known on Linux")
	}
	if want := procStatNice(t); got != want {
		t.Fatalf("niceness() = %d, /proc/self/stat says %d", got, want)
	}
	if os.Getenv("PASSPORT_LOAD_NICENESS_CHILD") != "" {
		os.Stdout.WriteString("niceness=" + strconv.Itoa(got) + "\n")
		return
	}
	if got > 12 {
		t.Skipf("this test already runs at nice %d: no room for 7 more", got)
	}
	nice, err := exec.LookPath("nice")
	if err != nil {
		t.Skip("no nice command here")
	}
	cmd := exec.Command(nice, "-n", "7", os.Args[0], "-test.run=^TestNiceness$", "-test.v")
	cmd.Env = append(os.Environ(), "PASSPORT_LOAD_NICENESS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the test under nice -n 7: %v\n%s", err, out)
	}
	if want := "niceness=" + strconv.Itoa(got+7) + "\n"; !strings.Contains(string(out), want) {
		t.Fatalf("under nice -n 7 the test printed\n%s\nwant a line %q", out, strings.TrimSpace(want))
	}
}

// procStatNice is field 19 of /proc/self/stat, the process's nice value, counted after the command name
// (which may hold spaces) closes.
func procStatNice(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // field 3 onwards
	n, err := strconv.Atoi(fields[19-3])
	if err != nil {
		t.Fatalf("/proc/self/stat field 19 %q: %v", fields[19-3], err)
	}
	return n
}
