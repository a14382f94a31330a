// bin/bqctl: runs the program on this process's streams and exits with its code.
import { EXIT_FAILURE, runBqctl } from './program.js';

// A reader that went away (`bqctl list | head`) is not an error worth a stack trace: stop at once,
// as a process killed by SIGPIPE would, and say by the exit code that not everything was written.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE' && stream === process.stdout) process.stderr.write(`error: cannot write the output: ${error.message}\n`);
    process.exit(EXIT_FAILURE);
  });
}

/**
 * Exits once stdout and stderr have handed everything to the kernel. process.exit() alone drops
 * what is still queued: a pipe (| jq, | wc) used to get the first 64 KiB and exit code 0.
 */
async function exitAfterOutput(code: number): Promise<never> {
  const flushed = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => (stream.writable ? stream.write('', () => resolve()) : resolve()));
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

const io = { stdout: (text: string) => void process.stdout.write(text), stderr: (text: string) => void process.stderr.write(text), env: process.env };
void runBqctl(process.argv.slice(2), io).then(exitAfterOutput);
