/* global EventSource, SharedWorker, ResizeObserver, addEventListener, requestAnimationFrame, getComputedStyle, devicePixelRatio, sessionStorage, crypto */
// The demo page: every panel reads one Server-Sent Events stream with the browser's own
// EventSource. The routes declare `schema.sse`, so every event's data is JSON.
//
// This one module also runs as a SharedWorker. Browsers allow about six HTTP/1.1 connections
// per server, shared by all tabs, and each open EventSource holds one. So the streams every tab
// wants (clock, metrics, notifications) are opened once, in the worker, and shared with every
// tab; a tab only opens its own connections for what it alone asked for (chat, counter, ...).
// Over HTTP/2 the limit does not apply, but browsers only speak HTTP/2 over TLS.

if (typeof document === 'undefined') shareStreams()
else showDemo()

// ---------------------------------------------------------------------------------------------
// In the SharedWorker: one EventSource per URL, whatever the number of tabs.

function shareStreams () {
  const streams = new Map() // url -> { state, ports, recent }

  globalThis.addEventListener('connect', ({ ports: [port] }) => {
    port.addEventListener('message', ({ data }) => {
      if (data.type === 'follow') follow(port, data)
      else if (data.type === 'leave') for (const stream of streams.values()) stream.ports.delete(port)
    })
    port.start()
  })

  function follow (port, { url, events, keep }) {
    let stream = streams.get(url)
    if (stream === undefined) {
      stream = { state: 'connecting', ports: new Set(), recent: [] }
      streams.set(url, stream)
      const shared = stream
      const tell = (message) => { for (const tab of shared.ports) tab.postMessage(message) }
      const source = new EventSource(url)
      source.addEventListener('open', () => tell({ url, state: (shared.state = 'open') }))
      source.addEventListener('error', () => {
        shared.state = source.readyState === EventSource.CLOSED ? 'closed' : 'connecting'
        tell({ url, state: shared.state })
      })
      for (const event of events) {
        source.addEventListener(event, ({ data, lastEventId }) => {
          const message = { url, event, data, id: lastEventId }
          // A tab that opens later first gets the last few events (the metrics chart's minute).
          shared.recent.push(message)
          if (shared.recent.length > keep) shared.recent.shift()
          tell(message)
        })
      }
    }
    stream.ports.add(port)
    port.postMessage({ url, state: stream.state })
    for (const message of stream.recent) port.postMessage(message)
  }
}

// ---------------------------------------------------------------------------------------------
// In the page.

function showDemo () {
  const followers = new Map() // url -> { onEvent, onState }
  const worker = typeof SharedWorker === 'function'
    ? new SharedWorker(import.meta.url, { type: 'module', name: 'fastify-conduit demo streams' })
    : undefined
  if (worker !== undefined) {
    worker.port.addEventListener('message', ({ data: { url, event, data, id, state } }) => {
      const follower = followers.get(url)
      if (state !== undefined) follower.onState(state)
      else follower.onEvent(event, JSON.parse(data), id)
    })
    worker.port.start()
    addEventListener('pagehide', () => worker.port.postMessage({ type: 'leave' }))
  }

  /** A stream every tab shows: through the shared worker when there is one. */
  function follow (url, events, keep, onEvent, onState) {
    followers.set(url, { onEvent, onState })
    if (worker !== undefined) worker.port.postMessage({ type: 'follow', url, events, keep })
    else open(url, events, onEvent, onState)
  }

  /** A stream of this tab only. Returns the EventSource: close it when done. */
  function open (url, events, onEvent, onState) {
    const source = new EventSource(url)
    onState('connecting')
    source.addEventListener('open', () => onState('open'))
    // EventSource reconnects by itself (after the server's `retry`), sending Last-Event-ID;
    // it only gives up, CLOSED, when the server answers anything but 200 (204 means "done").
    source.addEventListener('error', () => onState(source.readyState === EventSource.CLOSED ? 'closed' : 'connecting'))
    for (const event of events) {
      source.addEventListener(event, ({ data, lastEventId }) => onEvent(event, JSON.parse(data), lastEventId))
    }
    return source
  }

  const $ = (selector) => document.querySelector(selector)
  const element = (tag, className, text) => {
    const node = document.createElement(tag)
    if (className) node.className = className
    if (text !== undefined) node.textContent = text
    return node
  }
  const LABELS = { open: 'live', connecting: 'connecting', closed: 'done', idle: 'idle' }
  const badge = (name) => (state) => {
    const node = $(`.badge[data-stream="${name}"]`)
    node.dataset.state = state
    node.textContent = LABELS[state]
  }

  // The header pill: live when every shared stream is.
  const shared = new Map()
  const sharedBadge = (name) => {
    const show = badge(name)
    return (state) => {
      show(state)
      shared.set(name, state)
      const pill = $('#connection')
      const live = [...shared.values()].every((value) => value === 'open')
      pill.dataset.state = live ? 'open' : 'connecting'
      pill.textContent = live ? 'live' : 'reconnecting…'
    }
  }

  // Clock: GET /time.
  follow('/time', ['time'], 1, (event, { epoch }) => {
    const now = new Date(epoch)
    $('#time-output').textContent = now.toLocaleTimeString([], { hour12: false })
    $('#time-date').textContent = now.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' })
  }, sharedBadge('time'))

  // Counter: GET /count, 1 to 10. After a server restart EventSource reconnects with
  // Last-Event-ID and the count goes on where it was; at the end the server answers 204.
  let counter
  const startCounter = () => {
    counter?.close()
    const output = $('#counter-output')
    output.replaceChildren(...Array.from({ length: 10 }, () => element('span')))
    output.dataset.received = ''
    counter = open('/count', ['counter'], (event, { value }) => {
      const cell = output.children[value - 1]
      cell.textContent = value
      cell.className = 'on'
      output.dataset.received += (output.dataset.received ? ',' : '') + value
    }, badge('count'))
  }
  $('#count-restart').addEventListener('click', startCounter)
  startCounter()

  // AI chat: each answer is a resumable stream, generated once on the server whoever is
  // connected. GET /ai/answers/<id>?prompt=… starts it; the page keeps the answer's id, its text
  // so far and the id of the last token (one sessionStorage entry, written with each token).
  // After a reload it attaches with GET /ai/answers/<id>/resume?lastEventId=<that id>
  // (EventSource cannot send the Last-Event-ID header on a first connection) and the answer goes
  // on after the last token shown: none lost, none repeated.
  const ANSWER = 'fastify-conduit demo: answer in progress'
  const chat = $('#chat')
  const chatButton = $('#chat-form button')
  let leaving = false
  for (const type of ['beforeunload', 'pagehide']) addEventListener(type, () => { leaving = true })

  const streamAnswer = (answer, url) => {
    chat.querySelector('.empty')?.remove()
    chat.append(element('div', 'msg user', answer.prompt))
    const reply = element('div', 'msg assistant streaming', answer.text)
    reply.dataset.answer = answer.id
    chat.append(reply)
    chatButton.disabled = true
    const save = () => sessionStorage.setItem(ANSWER, JSON.stringify(answer))
    save()
    const finish = (reason) => {
      source.close()
      sessionStorage.removeItem(ANSWER)
      reply.classList.remove('streaming')
      reply.dataset.done = reason
      badge('chat')('closed')
      chatButton.disabled = false
    }
    const source = open(url, ['token', 'done'], (event, data, lastEventId) => {
      if (event === 'token') {
        answer.text += data.text
        answer.lastEventId = lastEventId
        save()
        reply.textContent = answer.text
      } else {
        finish(data.reason)
      }
      chat.scrollTop = chat.scrollHeight
    }, (state) => {
      // CLOSED without `done`: the server answered 204, the answer expired (or never was). Not
      // when the page is going away: Chromium fails the EventSource of a page being reloaded
      // (before pagehide, hence beforeunload too), and then the answer goes on after the reload.
      if (state === 'closed' && !leaving) finish('gone')
      else badge('chat')(state)
    })
  }

  $('#chat-form').addEventListener('submit', (submit) => {
    submit.preventDefault()
    const answer = { id: crypto.randomUUID(), prompt: $('#chat-input').value, text: '', lastEventId: '' }
    streamAnswer(answer, `/ai/answers/${answer.id}?prompt=${encodeURIComponent(answer.prompt)}`)
  })

  const unfinished = JSON.parse(sessionStorage.getItem(ANSWER) ?? 'null')
  if (unfinished !== null) {
    const after = unfinished.lastEventId === '' ? '' : `?lastEventId=${encodeURIComponent(unfinished.lastEventId)}`
    streamAnswer(unfinished, `/ai/answers/${unfinished.id}/resume${after}`)
  }

  // Progress: GET /download, `progress` events from 0 to 100.
  $('#progress-start').addEventListener('click', ({ target: button }) => {
    button.disabled = true
    const bar = $('#progress-bar')
    const source = open('/download', ['progress'], (event, { progress, status, message }) => {
      bar.style.width = `${progress}%`
      bar.setAttribute('aria-valuenow', progress)
      $('#progress-status').textContent = `${progress}% · ${message}`
      if (status === 'done') {
        source.close()
        badge('download')('closed')
        button.disabled = false
        button.textContent = 'Download again'
      }
    }, badge('download'))
  })

  // Notifications: GET /notifications is a channel; POST /notifications publishes to it.
  follow('/notifications', ['notification'], 20, (event, { title, level, at }) => {
    const list = $('#notification-list')
    list.querySelector('.empty')?.remove()
    const item = element('li', level)
    const time = element('time', '', new Date(at).toLocaleTimeString([], { hour12: false }))
    time.dateTime = at
    item.append(element('span', 'level', level), element('span', 'title', title), time)
    list.prepend(item)
    while (list.children.length > 20) list.lastElementChild.remove()
  }, sharedBadge('notifications'))

  $('#notify-form').addEventListener('submit', async (submit) => {
    submit.preventDefault()
    const title = $('#notify-title')
    const response = await fetch('/notifications', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: title.value, level: $('#notify-level').value })
    })
    if (response.ok) title.value = ''
  })

  // Server metrics: GET /metrics, one sample a second, drawn on canvas.
  const METRICS = {
    cpu: { unit: '%', floor: 10 },
    memory: { unit: ' MiB', floor: 50 },
    eventLoopDelay: { unit: ' ms', floor: 20 },
    openStreams: { unit: '', floor: 5 }
  }
  const HISTORY = 60
  const samples = []
  let frame = 0
  follow('/metrics', ['metrics'], HISTORY, (event, sample) => {
    samples.push(sample)
    if (samples.length > HISTORY) samples.shift()
    for (const name of Object.keys(METRICS)) $(`#metric-${name}`).textContent = sample[name] + METRICS[name].unit
    frame ||= requestAnimationFrame(drawCharts)
  }, sharedBadge('metrics'))

  function drawCharts () {
    frame = 0
    const style = getComputedStyle(document.documentElement)
    for (const canvas of document.querySelectorAll('canvas[data-metric]')) {
      const name = canvas.dataset.metric
      drawChart(canvas, samples.map((sample) => sample[name]), {
        ...METRICS[name],
        color: style.getPropertyValue(`--${name}`).trim(),
        grid: style.getPropertyValue('--line').trim(),
        label: style.getPropertyValue('--muted').trim()
      })
      canvas.dataset.points = samples.length
    }
  }
  new ResizeObserver(() => { frame ||= requestAnimationFrame(drawCharts) }).observe($('.charts'))

  // MCP tool run: GET /mcp/tools/execute, `tool_progress` events, `tool_result`, `tool_complete`.
  $('#tool-form').addEventListener('submit', (submit) => {
    submit.preventDefault()
    const button = submit.target.querySelector('button')
    const log = $('#tool-log')
    const result = $('#tool-result')
    log.replaceChildren()
    result.replaceChildren()
    button.disabled = true
    const url = `/mcp/tools/execute?text=${encodeURIComponent($('#tool-input').value)}`
    const source = open(url, ['tool_progress', 'tool_result', 'tool_complete'], (event, data) => {
      if (event === 'tool_progress') {
        log.append(element('li', '', `${data.message} (${data.progress}/${data.total})`))
      } else if (event === 'tool_result') {
        const { sentences, words, characters, topWords } = data.result
        const stat = (value, label) => {
          const node = element('div', 'stat')
          node.append(element('b', '', value), element('span', '', label))
          return node
        }
        const top = element('div', 'words', 'Top words')
        top.append(...topWords.map(({ word, count }) => element('code', '', `${word} ×${count}`)))
        result.append(stat(sentences, 'sentences'), stat(words, 'words'), stat(characters, 'characters'), top)
      } else {
        source.close()
        log.append(element('li', 'result', `tool_complete in ${data.durationMs} ms`))
        badge('tool')('closed')
        button.disabled = false
      }
      log.scrollTop = log.scrollHeight
    }, badge('tool'))
  })
}

// ---------------------------------------------------------------------------------------------
// A line chart on a canvas: the last HISTORY values, newest on the right, scaled to a round
// maximum, with three grid lines and their labels.

function drawChart (canvas, values, { color, grid, label, unit, floor }) {
  const ratio = devicePixelRatio || 1
  const width = canvas.clientWidth
  const height = canvas.clientHeight
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio)
    canvas.height = Math.round(height * ratio)
  }
  const context = canvas.getContext('2d')
  context.setTransform(ratio, 0, 0, ratio, 0, 0)
  context.clearRect(0, 0, width, height)

  const left = 44
  const right = width - 10
  const top = 10
  const bottom = height - 20
  const max = roundUp(Math.max(floor, ...values))
  const x = (index) => right - (values.length - 1 - index) * (right - left) / 59
  const y = (value) => bottom - (value / max) * (bottom - top)

  context.font = '11px ui-monospace, monospace'
  context.textBaseline = 'middle'
  context.lineWidth = 1
  for (const step of [0, 0.5, 1]) {
    const level = Math.round(y(max * step)) + 0.5
    context.strokeStyle = grid
    context.beginPath()
    context.moveTo(left, level)
    context.lineTo(right, level)
    context.stroke()
    context.fillStyle = label
    context.textAlign = 'right'
    context.fillText(`${+(max * step).toFixed(1)}${unit.trim() === '%' ? '%' : ''}`, left - 6, level)
  }
  context.textAlign = 'left'
  context.fillText('60 s', left, height - 8)
  context.textAlign = 'right'
  context.fillText('now', right, height - 8)
  if (values.length === 0) return

  context.beginPath()
  values.forEach((value, index) => context.lineTo(x(index), y(value)))
  context.lineJoin = 'round'
  context.lineWidth = 2
  context.strokeStyle = color
  context.stroke()

  const fill = context.createLinearGradient(0, top, 0, bottom)
  fill.addColorStop(0, color + '55')
  fill.addColorStop(1, color + '05')
  context.lineTo(x(values.length - 1), bottom)
  context.lineTo(x(0), bottom)
  context.closePath()
  context.fillStyle = fill
  context.fill()

  context.beginPath()
  context.arc(x(values.length - 1), y(values.at(-1)), 3.5, 0, 2 * Math.PI)
  context.fillStyle = color
  context.fill()
}

/** The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value`. */
function roundUp (value) {
  const power = 10 ** Math.floor(Math.log10(value))
  return [1, 2, 2.5, 5, 10].map((step) => step * power).find((step) => step >= value)
}
