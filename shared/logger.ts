/**
 * One pino root per process; modules take a child (`log.child({ module: 'router' })`). Messages are constant
 * strings and data goes in fields, so logs can be grepped and parsed.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level: string;
  name: string;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino({ level: options.level, name: options.name, base: { pid: process.pid } });
}

/** A logger that drops everything: for unit tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
