"""Stand-in for a job worker: processes 'jobs' and crashes now and then, to show restarts."""
import os
import random
import signal
import sys
import time

CRASH_CHANCE = float(os.environ.get("CRASH_CHANCE", "0.1"))


def main():
    signal.signal(signal.SIGTERM, lambda *_: (print("worker finishing current job", flush=True), sys.exit(0)))
    print("worker started, waiting for jobs", flush=True)
    job = 0
    while True:
        time.sleep(1)
        job += 1
        if random.random() < CRASH_CHANCE:
            print(f"worker crashed on job {job}", file=sys.stderr, flush=True)
            sys.exit(1)
        print(f"processed job {job}", flush=True)


if __name__ == "__main__":
    main()
