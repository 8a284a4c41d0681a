import { Type } from '@sinclair/typebox';
import { CHUNK_ID_PATTERN } from './chunk-id.js';

/** Schema pieces shared by every API. */
export const HexId = Type.String({ pattern: '^[0-9a-f]{32}$' });
export const ChunkId = Type.String({ pattern: CHUNK_ID_PATTERN });
export const strict = { additionalProperties: false } as const;
