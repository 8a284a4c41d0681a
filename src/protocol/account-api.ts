import { type Static, Type } from '@sinclair/typebox';
import { HexId, strict } from './schemas.js';

export const UserName = Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,31}$' });
export const RawKey = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' });
const Sig = Type.String({ pattern: '^[A-Za-z0-9_-]{86}$' });
const Sealed = Type.String({ pattern: '^[A-Za-z0-9_-]{1,4096}$' });

export const SignupRequest = Type.Object(
  {
    name: UserName,
    signKey: RawKey,
    boxKey: RawKey,
    /** signature over signupMessage() with signKey */
    signature: Sig,
    /** the home folder's id and its node key sealed to boxKey */
    rootId: HexId,
    rootSealed: Sealed,
    invite: Type.Optional(Type.String({ maxLength: 128 })),
  },
  strict,
);
export type SignupRequest = Static<typeof SignupRequest>;

export interface UserInfo {
  id: string;
  name: string;
  admin: boolean;
}

export const ChallengeRequest = Type.Object({ name: UserName }, strict);
export interface ChallengeResponse {
  challenge: string;
  expiresAt: number;
}

export const LoginRequest = Type.Object(
  { name: UserName, challenge: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }), signature: Sig },
  strict,
);
export type LoginRequest = Static<typeof LoginRequest>;

export interface LoginResponse {
  token: string;
  expiresAt: number;
  user: UserInfo;
}

export interface MeResponse extends UserInfo {
  signKey: string;
  boxKey: string;
  rootId: string;
  rootSealed: string;
}

export interface InviteResponse {
  code: string;
  expiresAt: number;
}
