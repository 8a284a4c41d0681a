import { createServer, type Server } from 'node:http';

/**
 * A file server stand-in for main's read-backs: a GET of a chunk in `held` answers its
 * bytes, anything else 404 as a file server would. Every request is noted as
 * `METHOD URL` in `asked`.
 */
export async function fakeFileServer(
  held: Map<string, Buffer>,
): Promise<{ server: Server; url: string; asked: string[] }> {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    asked.push(`${req.method} ${req.url}`);
    const body = held.get((req.url ?? '').split('/')[3] ?? '');
    if (req.method === 'GET' && body && req.url?.split('/').length === 4) {
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
      return;
    }
    res.statusCode = 404;
    res.end('{"error":{"code":"SEDFS_ERR_CHUNK_NOT_FOUND","message":"no such chunk on this server"}}');
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, asked };
}
