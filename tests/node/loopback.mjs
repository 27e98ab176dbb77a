// What the Node tests share: a loopback port where nothing listens.
import { createServer } from "node:net";

/** A loopback port that was free a moment ago: connecting to it is refused. */
export function closedPort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
