import type { Agent } from 'undici';
import { createAgent, requestJson } from '../common/http-client.js';
import type {
  BeginUploadResponse,
  BlobManifest,
  CommitRequest,
  CommitResponse,
  PlacementRequest,
  PlacementResponse,
  ServersResponse,
} from '../protocol/main-api.js';

/** Typed calls to main's API; one connection pool shared with the chunk transfers. */
export class ClusterClient {
  readonly agent: Agent;
  private readonly ownAgent: boolean;

  constructor(
    readonly mainUrl: string,
    agent?: Agent,
  ) {
    this.mainUrl = mainUrl.replace(/\/+$/, '');
    this.ownAgent = agent === undefined;
    this.agent = agent ?? createAgent();
  }

  servers(): Promise<ServersResponse> {
    return requestJson(this.agent, `${this.mainUrl}/v1/servers`);
  }

  beginUpload(replicas?: number): Promise<BeginUploadResponse> {
    return requestJson(this.agent, `${this.mainUrl}/v1/uploads`, { body: replicas ? { replicas } : {} });
  }

  place(uploadId: string, chunks: PlacementRequest['chunks']): Promise<PlacementResponse> {
    return requestJson(this.agent, `${this.mainUrl}/v1/uploads/${uploadId}/placements`, { body: { chunks } });
  }

  commit(uploadId: string, chunks: CommitRequest['chunks']): Promise<CommitResponse> {
    return requestJson(this.agent, `${this.mainUrl}/v1/uploads/${uploadId}/commit`, { body: { chunks } });
  }

  manifest(blobId: string): Promise<BlobManifest> {
    return requestJson(this.agent, `${this.mainUrl}/v1/blobs/${blobId}`);
  }

  reportBadReplica(chunkId: string, server: string): Promise<unknown> {
    return requestJson(this.agent, `${this.mainUrl}/v1/chunks/${chunkId}/bad-replica`, { body: { server } });
  }

  async close(): Promise<void> {
    if (this.ownAgent) await this.agent.close();
  }
}
