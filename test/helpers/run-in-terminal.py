# Runs a command on a new pseudo-terminal, as its controlling terminal, and closes the terminal
# once the command has written a line matching a pattern, as a user closing the terminal window
# does: the kernel hangs the terminal up and sends SIGHUP to the command, the session's leader
# (Linux drivers/tty/tty_jobctrl.c, tty_signal_session_leader). Prints, as one JSON object, what the
# command wrote before, whether the pattern matched, and how the command ended.
# Usage: python3 run-in-terminal.py '["node", "bin/minivisor.js", ...]' 'PATTERN' TIMEOUT_S
import json, os, pty, re, select, sys, time

argv = json.loads(sys.argv[1])
pattern = re.compile(sys.argv[2].encode())
deadline = time.monotonic() + float(sys.argv[3])
pid, master = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
seen = b''
while not pattern.search(seen) and time.monotonic() < deadline:
    ready, _, _ = select.select([master], [], [], 0.1)
    if not ready:
        continue
    try:
        chunk = os.read(master, 65536)
    except OSError:  # EIO: the command ended and closed the terminal's last descriptor
        break
    if not chunk:
        break
    seen += chunk
matched = pattern.search(seen) is not None
if not matched:
    os.kill(pid, 9)
os.close(master)
_, status = os.waitpid(pid, 0)
print(json.dumps({
    'matched': matched,
    'output': seen.decode('utf8', 'replace'),
    'status': os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
    'signal': os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
}))
