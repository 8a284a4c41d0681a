/**
 * The three pieces of undici SEDFS uses (Agent, request, buildConnector), loaded from
 * their own files. undici's index.js loads all of undici, fetch, WebSocket, cookies, mock
 * agents and caches included: 30-60 ms at the start of every `sedfs` command (a bundle of
 * just these pieces loads in ~20 ms and is half the size). undici has no `exports` map,
 * so these paths are public to Node; the lockfile pins the version they were read from,
 * and every integration test runs the servers and the CLI on them (tests' own requests
 * use undici's index).
 */
import type * as Undici from 'undici';
import apiRequest from 'undici/lib/api/api-request.js';
import connector from 'undici/lib/core/connect.js';
import AgentClass from 'undici/lib/dispatcher/agent.js';

export const Agent = AgentClass;
export type Agent = Undici.Agent;
export type { Dispatcher } from 'undici';
export const buildConnector = connector;
/** What `buildConnector` makes: how a dispatcher opens its connections. */
export type Connector = Undici.buildConnector.connector;

/**
 * undici's `request`, always with a dispatcher of ours (there is no global one here):
 * the URL split into origin and path as undici's own wrapper does.
 */
export function request(
  url: string | URL,
  options: Omit<Undici.Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & {
    method?: Undici.Dispatcher.HttpMethod;
    dispatcher: Undici.Dispatcher;
    /**
     * The file-server ids one of which must answer (their certificate), for this request
     * alone: read by `createAgent`'s agents, which undici hands the request's options.
     */
    expectedIds?: readonly string[];
  },
): Promise<Undici.Dispatcher.ResponseData> {
  const target = typeof url === 'string' ? new URL(url) : url;
  const { dispatcher, ...rest } = options;
  return apiRequest.call(dispatcher, {
    ...rest,
    origin: target.origin,
    path: target.search ? `${target.pathname}${target.search}` : target.pathname,
    method: rest.method ?? (rest.body ? 'PUT' : 'GET'),
  });
}
