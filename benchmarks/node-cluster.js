// Node.js cluster in round-robin mode (SCHED_RR), the same hello world: node node-cluster.js <port> <workers>
const cluster = require('node:cluster');
const http = require('node:http');

const port = Number(process.argv[2] || 8080);
const workers = Number(process.argv[3] || 2);
cluster.schedulingPolicy = cluster.SCHED_RR;

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('listening', (worker) => console.log(`worker ${worker.id} is ready (pid ${worker.process.pid})`));
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      for (const id in cluster.workers) cluster.workers[id].kill();
      process.exit(0);
    });
  }
} else {
  http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('Hello, World!');
  }).listen(port, '127.0.0.1');
}
