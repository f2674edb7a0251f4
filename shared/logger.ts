/**
 * One pino root per process; modules take a child (`log.child({ module: 'router' })`). Messages are constant
 * strings and data goes in fields, so logs can be grepped and parsed.
 *
 * Lines are JSON, except when standard output is a terminal (`npm start` in a shell): then pino-pretty renders them
 * for a person, synchronously on this thread (log lines are written at boundaries only, never per call). pino-pretty
 * is loaded only then, so a process whose output goes to a pipe, a file or a collector never loads it.
 */
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level: string;
  name: string;
  /** Human-readable lines instead of JSON; by default when standard output is a terminal. */
  pretty?: boolean;
}

export function createLogger(options: LoggerOptions): Logger {
  const settings = { level: options.level, name: options.name, base: { pid: process.pid } };
  if (!(options.pretty ?? process.stdout.isTTY)) return pino(settings);
  return pino(settings, prettyStream());
}

type PrettyFactory = (options: Record<string, unknown>) => DestinationStream;

function prettyStream(): DestinationStream {
  const require = createRequire(import.meta.url);
  const build = require('pino-pretty') as PrettyFactory;
  return build({ sync: true, colorize: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'hostname' });
}

/** A logger that drops everything: for unit tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
