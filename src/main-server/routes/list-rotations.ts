import type { FastifyInstance } from 'fastify';
import type { RotationsResponse } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/** Key rotations in the caller's tree that an unshare began and nobody finished. */
export function listRotationsRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get(
    '/v1/rotations',
    async (req): Promise<RotationsResponse> => ctx.namespace.rotations(requireUser(ctx, req)),
  );
}
