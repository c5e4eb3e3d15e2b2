import { subscribe } from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'
import { expect, test } from 'tstyche'
import {
  diagnosticsChannels,
  type BusErrorMessage,
  type InvalidEventMessage,
  type ReplayGapMessage,
  type SlowSubscriberMessage,
  type StreamCloseMessage,
  type StreamEndReason,
  type StreamInfo,
  type StreamOpenMessage
} from 'fastify-conduit'

test('channel names are literal strings', () => {
  expect(diagnosticsChannels.streamOpen).type.toBe<'fastify-conduit:stream:open'>()
  expect(diagnosticsChannels.streamClose).type.toBe<'fastify-conduit:stream:close'>()
  expect(diagnosticsChannels.invalidEvent).type.toBe<'fastify-conduit:event:invalid'>()
  expect(diagnosticsChannels.slowSubscriber).type.toBe<'fastify-conduit:subscriber:slow'>()
  expect(diagnosticsChannels.replayGap).type.toBe<'fastify-conduit:replay:gap'>()
  expect(diagnosticsChannels.busError).type.toBe<'fastify-conduit:bus:error'>()
  // @ts-expect-error Cannot assign to 'streamOpen' because it is a read-only property
  diagnosticsChannels.streamOpen = 'x'
  subscribe(diagnosticsChannels.streamClose, () => {})
})

test('messages', () => {
  const info = {} as StreamInfo
  expect(info.request).type.toBe<FastifyRequest>()
  expect(info.route).type.toBe<string | undefined>()
  expect(info.lastEventId).type.toBe<string | undefined>()
  expect(info.channel).type.toBe<string | undefined>()
  expect<StreamOpenMessage>().type.toBe<{ readonly stream: StreamInfo }>()
  const close = {} as StreamCloseMessage
  expect(close.duration).type.toBe<number>()
  expect(close.events).type.toBe<number>()
  expect(close.bytes).type.toBe<number>()
  expect(close.reason).type.toBe<StreamEndReason>()
  expect<StreamEndReason>().type.toBe<'end' | 'client' | 'server' | 'error' | 'invalid' | 'aborted' | 'refused'>()
  const invalid = {} as InvalidEventMessage
  expect(invalid.stream).type.toBe<StreamInfo | undefined>()
  expect(invalid.error.code).type.toBe<string | undefined>()
  expect(invalid.policy).type.toBe<'close' | 'skip'>()
  expect(({} as SlowSubscriberMessage).subscriber).type.toBe<'stream' | 'iterator'>()
  expect(({} as ReplayGapMessage).lastEventId).type.toBe<string | undefined>()
  expect(({} as BusErrorMessage).operation).type.toBe<'publish' | 'subscribe' | 'read'>()
})
