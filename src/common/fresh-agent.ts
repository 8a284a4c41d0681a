import type { Agent, Dispatcher } from './undici.js';

/** How to make a new agent that connects as each agent noted here does. */
const makers = new WeakMap<Dispatcher, () => Agent>();

/** Notes how to make another agent like `agent` (createAgent does, for each it makes). */
export function noteHowToMakeAgain(agent: Dispatcher, make: () => Agent): void {
  makers.set(agent, make);
}

/**
 * A new agent that connects as `agent` does (its certificate, the identities it checks),
 * with no connection yet; undefined for an agent not noted. For a health check
 * (StallWatch), which must not queue behind the very requests whose server it checks
 * on: with an endpoint's 64 connections all busy with orders, it waited past its limit
 * and failed them all as unreachable. Close it after use.
 */
export function freshAgentLike(agent: Dispatcher): Agent | undefined {
  return makers.get(agent)?.();
}
