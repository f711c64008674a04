// peer.js: the benchmark's peer for playbookd. It is what a team would write instead of playbookd: a
// plain Node.js NATS subscriber that, for each Falco alert, deletes the alert's pod with the official
// Kubernetes client (@kubernetes/client-node) and records an events.k8s.io/v1 Event about it, with at
// most --concurrency alerts in flight. bench/ runs it against the same NATS server and API server as
// playbookd to compare the two; it is not part of playbookd.
//
//   node peer.js --nats nats://127.0.0.1:4222 --subject 'falco.>' --kubeconfig FILE --concurrency 32 [--dry-run]
//                [--default-agent]   (the library's own agent: a new TLS connection per request)
//
// stdout: one line "ready" once subscribed; on SIGTERM one line {"handled":N,"failed":N,"skipped":N}.
// stderr: one short line per failed alert.

import https from 'node:https';
import os from 'node:os';
import { parseArgs } from 'node:util';

import { CoreV1Api, EventsV1Api, KubeConfig, Observable, V1MicroTime } from '@kubernetes/client-node';
import { connect } from 'nats';

const { values: args } = parseArgs({
    options: {
        nats: { type: 'string', default: 'nats://127.0.0.1:4222' },
        subject: { type: 'string', default: 'falco.>' },
        kubeconfig: { type: 'string' },
        concurrency: { type: 'string', default: '32' },
        'dry-run': { type: 'boolean', default: false },
        'default-agent': { type: 'boolean', default: false }, // client-node as shipped: no keep-alive
    },
});
const concurrency = Number.parseInt(args.concurrency, 10);
if (!args.kubeconfig || !(concurrency > 0)) {
    console.error('usage: node peer.js --nats URL --subject SUBJ --kubeconfig FILE --concurrency N [--dry-run]');
    process.exit(2);
}
const dryRun = args['dry-run'] ? 'All' : undefined;
const instance = os.hostname();

const kc = new KubeConfig();
kc.loadFromFile(args.kubeconfig);
const core = kc.makeApiClient(CoreV1Api);
const events = kc.makeApiClient(EventsV1Api);

// Keep-alive: client-node 1.x builds a new https.Agent (keepAlive off) inside KubeConfig's
// applySecurityAuthentication on every request, so by default every call pays a TCP connect and a full
// TLS handshake. We build one keep-alive agent from the kubeconfig's TLS settings (CA, client cert if
// any) and set it on each request in a per-call middleware (the pattern of the library's own
// setHeaderOptions), which runs after the auth step; the bearer token header still comes from the
// kubeconfig on every request. The pool grows to at most one socket per request in flight, i.e.
// --concurrency. The object-parameter APIs take Observable-style middleware, hence Observable.
const tls = {};
await kc.applyToHTTPSOptions(tls);
const agent = new https.Agent({ ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized,
                                keepAlive: true });
const withAgent = args['default-agent'] ? undefined : {
    middleware: [{
        pre: (ctx) => { ctx.setAgent(agent); return new Observable(Promise.resolve(ctx)); },
        post: (response) => new Observable(Promise.resolve(response)),
    }],
    middlewareMergeStrategy: 'append',
};

const counts = { handled: 0, failed: 0, skipped: 0 };

// A counting semaphore: the subscription loop waits for a free slot before taking the next message,
// so at most `concurrency` alerts are in flight and the rest wait in nats.js's own subscription queue.
class Semaphore {
    constructor(n) { this.free = n; this.waiters = []; }
    async acquire() {
        if (this.free > 0) { this.free--; return; }
        await new Promise((resolve) => this.waiters.push(resolve));
    }
    release() {
        const next = this.waiters.shift();
        if (next) next(); else this.free++;
    }
}

function why(err) {
    if (err?.code && err.body !== undefined) { // ApiException: the HTTP status and the Status object
        let body = err.body;
        try { if (typeof body === 'string') body = JSON.parse(body); } catch { /* not JSON */ }
        return `HTTP ${err.code} ${body?.reason ?? ''} ${body?.message ?? ''}`.trim();
    }
    return err?.message ?? String(err);
}

async function handle(data) {
    let alert;
    try {
        alert = JSON.parse(data);
    } catch (err) {
        counts.failed++;
        console.error(`bad alert: ${err.message}`);
        return;
    }
    const fields = alert?.output_fields ?? {};
    const namespace = fields['k8s.ns.name'];
    const name = fields['k8s.pod.name'];
    if (typeof namespace !== 'string' || !namespace || typeof name !== 'string' || !name) {
        counts.skipped++;
        return;
    }
    try {
        try {
            await core.deleteNamespacedPod({
                name, namespace, dryRun,
                body: { apiVersion: 'v1', kind: 'DeleteOptions', dryRun: dryRun && [dryRun] },
            }, withAgent);
        } catch (err) {
            if (err?.code === 404) { // already gone: the goal holds (playbookd does the same)
                counts.handled++;
                return;
            }
            throw err;
        }
        await events.createNamespacedEvent({
            namespace, dryRun,
            body: {
                apiVersion: 'events.k8s.io/v1',
                kind: 'Event',
                metadata: { generateName: 'peer-', namespace },
                eventTime: new V1MicroTime(), // serialised with exactly six fractional digits
                reportingController: 'falco-peer',
                reportingInstance: instance,
                action: 'DeletePod',
                reason: 'FalcoAlert',
                type: 'Warning',
                regarding: { apiVersion: 'v1', kind: 'Pod', namespace, name },
                note: `${dryRun ? '[dry run] ' : ''}deleted pod ${namespace}/${name}: Falco rule "${alert.rule}"`.slice(0, 1024),
            },
        }, withAgent);
        counts.handled++;
    } catch (err) {
        counts.failed++;
        console.error(`${namespace}/${name}: ${why(err)}`);
    }
}

const nc = await connect({ servers: args.nats, name: 'falco-peer' });
const sub = nc.subscribe(args.subject);
await nc.flush();
process.stdout.write('ready\n');

process.on('SIGTERM', () => {
    process.stdout.write(JSON.stringify(counts) + '\n', () => process.exit(0));
});

const slots = new Semaphore(concurrency);
for await (const msg of sub) {
    await slots.acquire();
    handle(msg.string()).finally(() => slots.release());
}
