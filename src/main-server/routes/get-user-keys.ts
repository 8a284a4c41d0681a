import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { UserName } from '../../protocol/account-api.js';
import { SedfsError } from '../../protocol/errors.js';
import type { UserKeysResponse } from '../../protocol/namespace-api.js';
import { type MainContext, requireUser } from '../context.js';

/** A user's public keys, for sealing a share to them; the client pins what it sees. */
export function getUserKeysRoute(app: FastifyInstance, ctx: MainContext): void {
  app.get<{ Params: { name: string } }>(
    '/v1/users/:name',
    { schema: { params: Type.Object({ name: UserName }, { additionalProperties: false }) } },
    async (req): Promise<UserKeysResponse> => {
      requireUser(ctx, req);
      const u = ctx.namespaceStore.userByName(req.params.name);
      if (!u) throw new SedfsError('SEDFS_ERR_NOT_FOUND', `no user named ${req.params.name}`);
      return { id: u.id, name: u.name, signKey: u.signKey, boxKey: u.boxKey };
    },
  );
}
