# Runs a command on a new pseudo-terminal, as its controlling terminal, and once it has written
# output matching a pattern does what a user at that terminal does:
#   hangup: closes the terminal, as closing its window does: the kernel hangs the terminal up and
#     sends SIGHUP to the command, the session's leader (Linux drivers/tty/tty_jobctrl.c,
#     tty_signal_session_leader);
#   ctrl-c: types Ctrl-C: the terminal sends SIGINT to its foreground process group, the command
#     and every process it started (termios(3), ISIG and VINTR), and its output is read to the end.
# Prints, as one JSON object, what the command wrote, whether the pattern matched, and how the
# command ended. Usage: python3 run-in-terminal.py hangup|ctrl-c '["cmd", "arg", ...]' 'PATTERN' TIMEOUT_S
import json, os, pty, re, select, sys, time

action = sys.argv[1]
argv = json.loads(sys.argv[2])
pattern = re.compile(sys.argv[3].encode())
deadline = time.monotonic() + float(sys.argv[4])
pid, master = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)


def read_until(done):
    """Reads the terminal's output until done(output) or the end of the command or the deadline."""
    global seen
    while not done(seen) and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the command ended and closed the terminal's last descriptor
            return
        if not chunk:
            return
        seen += chunk


seen = b''
read_until(lambda out: pattern.search(out) is not None)
matched = pattern.search(seen) is not None
if not matched:
    os.kill(pid, 9)
elif action == 'ctrl-c':
    os.write(master, b'\x03')
    read_until(lambda out: False)
os.close(master)
_, status = os.waitpid(pid, 0)
print(json.dumps({
    'matched': matched,
    'output': seen.decode('utf8', 'replace'),
    'status': os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
    'signal': os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
}))
