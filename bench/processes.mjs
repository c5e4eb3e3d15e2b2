// Child processes for the runner: a server or a load client, spoken to over the IPC channel,
// and always ended: asked to exit, then killed by pid if it does not. 5,000 sockets on each side
// need more open files than a common soft limit of 1,024: Node raises its own soft limit to the
// hard limit at startup, so only the hard limit matters (openFilesLimit() reads it).
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** Soft and hard limits on open files of a process, from /proc (Linux), or null. */
export function openFilesLimit (pid = 'self') {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
    const [soft, hard] = line.slice('Max open files'.length).trim().split(/\s+/)
    return { soft: soft === 'unlimited' ? Infinity : Number(soft), hard: hard === 'unlimited' ? Infinity : Number(hard) }
  } catch {
    return null
  }
}

/**
 * Whether a child can be started with `count` open files through prlimit(1): true, or why not
 * (prlimit missing, or not allowed to raise the hard limit).
 */
export function raiseableFiles (count) {
  const run = spawnSync('prlimit', [`--nofile=${count}:${count}`, '--', process.execPath, '-e', ''], { encoding: 'utf8' })
  if (run.error) return `prlimit(1) is not available (${run.error.code})`
  return run.status === 0 || run.stderr.trim() || `prlimit exited with ${run.status}`
}

/** Peak and current RSS of a process in bytes, from /proc/<pid>/status (Linux), or null. */
export function procMemory (pid = 'self') {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (field) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1]) * 1024
    return { hwm: kb('VmHWM'), rss: kb('VmRSS') }
  } catch {
    return null
  }
}

/** A child process speaking JSON messages over IPC. */
export class Child {
  #proc
  #queue = []
  #waiters = []
  #exited = null
  #stderr = ''

  /**
   * @param {string} script  absolute path of the .mjs to run
   * @param {object} config  passed as one JSON argument
   * @param {object} options `{ execArgv, nofile }`: Node flags; `nofile`, open files (soft and
   *   hard limit) to start the process with, through prlimit(1) (which execs Node: same pid;
   *   raising the hard limit needs root or CAP_SYS_RESOURCE, see raiseableFiles())
   */
  constructor (script, config, { execArgv = [], nofile = null } = {}) {
    const argv = [...execArgv, script, JSON.stringify(config)]
    const [file, args] = nofile === null ? [process.execPath, argv] : ['prlimit', [`--nofile=${nofile}:${nofile}`, '--', process.execPath, ...argv]]
    this.#proc = spawn(file, args, { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] })
    this.#proc.stderr.setEncoding('utf8')
    this.#proc.stderr.on('data', (text) => {
      this.#stderr = (this.#stderr + text).slice(-4000)
      process.stderr.write(text)
    })
    this.#proc.on('message', (msg) => {
      const i = this.#waiters.findIndex((w) => w.types.includes(msg.type) || msg.type === 'error')
      if (i === -1) this.#queue.push(msg)
      else this.#waiters.splice(i, 1)[0].settle(msg)
    })
    this.#proc.on('exit', (code, signal) => {
      this.#exited = { code, signal }
      for (const w of this.#waiters.splice(0)) w.settle({ type: 'exit', code, signal })
    })
  }

  get pid () { return this.#proc.pid }

  send (msg) {
    if (this.#exited === null && this.#proc.connected) this.#proc.send(msg)
  }

  /**
   * The next message whose type is one of `types` (queued ones first). Rejects on an `error`
   * message, on exit, or after `timeoutMs`.
   */
  next (types, timeoutMs) {
    types = [].concat(types)
    const queued = this.#queue.findIndex((m) => types.includes(m.type) || m.type === 'error')
    return new Promise((resolve, reject) => {
      const settle = (msg) => {
        clearTimeout(timer)
        if (types.includes(msg.type)) resolve(msg)
        else if (msg.type === 'error') reject(new Error(msg.message))
        else reject(new Error(`process ${this.pid} exited (${msg.signal ?? msg.code}) while waiting for ${types.join('/')}${this.#stderrTail()}`))
      }
      const waiter = { types, settle }
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1)
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${types.join('/')} from process ${this.pid}`))
      }, timeoutMs)
      if (queued !== -1) settle(this.#queue.splice(queued, 1)[0])
      else if (this.#exited !== null) settle({ type: 'exit', ...this.#exited })
      else this.#waiters.push(waiter)
    })
  }

  /** Sends a request and waits for its reply type. */
  async ask (msg, replyType, timeoutMs) {
    this.send(msg)
    return this.next(replyType, timeoutMs)
  }

  /** Asks the child to exit; kills it (this pid only) if it has not exited within `graceMs`. */
  async stop (graceMs = 2000) {
    if (this.#exited !== null) return
    const exited = new Promise((resolve) => this.#proc.once('exit', resolve))
    this.send({ type: 'exit' })
    const timer = setTimeout(() => this.#proc.kill('SIGKILL'), graceMs)
    await exited
    clearTimeout(timer)
  }

  #stderrTail () {
    const tail = this.#stderr.trim().split('\n').slice(-5).join('\n')
    return tail ? `:\n${tail}` : ''
  }
}

/**
 * What every child does at start: exits when the runner goes away (IPC disconnect) and after
 * `lifetimeMs` whatever happens, so no process outlives a run.
 */
export function boundLifetime (lifetimeMs) {
  process.on('disconnect', () => process.exit(0))
  setTimeout(() => {
    process.stderr.write(`bench: process ${process.pid} exceeded its ${lifetimeMs} ms lifetime, exiting\n`)
    process.exit(3)
  }, lifetimeMs).unref()
  process.on('message', (msg) => { if (msg.type === 'exit') process.exit(0) })
}

/** Sends a message to the runner (no-op when not forked). */
export function report (msg) {
  if (process.send) process.send(msg)
}
