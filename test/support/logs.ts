type LogLine = Record<string, unknown>

/** The log lines of a Fastify instance, kept parsed, which a test can assert on or await. */
export class LogCapture {
  readonly lines: LogLine[] = []
  #waiters: Array<{ match: (line: LogLine) => boolean, resolve: (line: LogLine) => void }> = []

  /** A pino destination: pass as `logger.stream`. */
  readonly stream = {
    write: (text: string): void => {
      for (const line of text.split('\n')) if (line !== '') this.#push(JSON.parse(line))
    }
  }

  /** Pass as Fastify's `logger`: level info, into this capture. */
  get logger (): { level: string, stream: { write (text: string): void } } {
    return { level: 'info', stream: this.stream }
  }

  /** How many lines so far have a `msg` containing `text`. */
  count (text: string): number {
    return this.lines.filter((line) => String(line.msg).includes(text)).length
  }

  /** Resolves with the `nth` line (counting past ones) whose `msg` contains `text`. */
  waitFor (text: string, nth = 1): Promise<LogLine> {
    let seen = 0
    const match = (line: LogLine): boolean => String(line.msg).includes(text) && ++seen === nth
    const found = this.lines.find(match)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve) => this.#waiters.push({ match, resolve }))
  }

  #push (line: LogLine): void {
    this.lines.push(line)
    this.#waiters = this.#waiters.filter(({ match, resolve }) => {
      if (!match(line)) return true
      resolve(line)
      return false
    })
  }
}
