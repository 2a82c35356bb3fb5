// The fault lab's app for Node.js, the same endpoints as benchmarks/FaultApp (see its Program.cs):
//   node node-faults.js <port> <workers>   Node's cluster module, written as a careful user would: a worker that exits is
//                                          forked again at once, and SIGHUP restarts the workers one at a time (a new
//                                          one listening before the old one disconnects).
//   pm2 start node-faults.js -i <workers> -- <port>   PM2 cluster mode: PM2 is the primary, this file only serves.
// Environment, as for FaultApp: FaultApp__LeakKb, FaultApp__ChurnKb, FaultApp__LiveHeapMb.
const cluster = require('node:cluster');
const http = require('node:http');

const port = Number(process.argv[2] || 8080);
const workers = Number(process.argv[3] || 2);
const underPm2 = process.env.pm_id !== undefined;

if (cluster.isPrimary && !underPm2) {
  cluster.schedulingPolicy = cluster.SCHED_RR;
  let stopping = false;
  const retiring = new Set();
  const fork = () => cluster.fork();
  for (let i = 0; i < workers; i++) fork();
  cluster.on('listening', (worker) => console.log(`worker ${worker.id} is ready (pid ${worker.process.pid})`));
  cluster.on('exit', (worker) => {
    if (!stopping && !retiring.delete(worker.id)) fork();
  });
  process.on('SIGHUP', async () => {
    for (const old of Object.values(cluster.workers)) {
      const next = fork();
      await new Promise((resolve) => next.once('listening', resolve));
      retiring.add(old.id);
      old.disconnect();
      setTimeout(() => old.isDead() || old.kill('SIGKILL'), 30000).unref();
    }
    console.log('rolling restart done');
  });
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      stopping = true;
      for (const id in cluster.workers) cluster.workers[id].kill();
      process.exit(0);
    });
  }
} else {
  const leakKb = Number(process.env.FaultApp__LeakKb || 0);
  const churnKb = Number(process.env.FaultApp__ChurnKb || 0);
  const liveHeap = [];
  for (let i = 0; i < Number(process.env.FaultApp__LiveHeapMb || 0) * 1024; i++) liveHeap.push(new Array(120).fill(i));
  const leaked = [];
  const blocker = new Int32Array(new SharedArrayBuffer(4));

  http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/poison') {
      process.abort();
    }

    let body = 'Hello, World!';
    if (url.pathname === '/block') {
      Atomics.wait(blocker, 0, 0, Number(url.searchParams.get('ms') || 50)); // the event loop held, as a thread on a timer
      body = 'blocked';
    } else {
      if (leakKb > 0) leaked.push(Buffer.alloc(leakKb * 1024, 1));
      if (churnKb > 0) {
        let sink = 0;
        for (let i = 0; i < churnKb; i++) sink += new Array(120).fill(i).length;
        for (let i = 0; liveHeap.length > 0 && i < 8; i++) liveHeap[Math.floor(Math.random() * liveHeap.length)] = new Array(120).fill(sink);
      }
    }

    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(body);
  }).listen(port, '127.0.0.1');
}
