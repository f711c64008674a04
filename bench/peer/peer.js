// peer.js: the benchmark's peer for playbookd. It is what a team would write instead of playbookd: a
// plain Node.js NATS subscriber that, for each Falco alert, deletes the alert's pod with the official
// Kubernetes client (@kubernetes/client-node) and records an events.k8s.io/v1 Event about it, with at
// most --concurrency alerts in flight. bench/ runs it against the same NATS server and API server as
// playbookd to compare the two; it is not part of playbookd.
//
//   node peer.js --nats nats://127.0.0.1:4222 --subject 'falco.>' --kubeconfig FILE --concurrency 32 [--dry-run]
//                [--default-agent]            (the library's own agent: a new TLS connection per request)
//                [--jetstream STREAM [--durable NAME]]   (at least once: a durable pull consumer, acked
//                                             once the DELETE succeeded; the stream is created if absent)
//                [--protected NS,NS] [--cooldown-ms MS]  (playbookd's filtering besides host events,
//                                             always skipped: protected namespaces, one DELETE per pod per cooldown)
//
// stdout: one line "ready" once subscribed; on SIGUSR2 and on SIGTERM one line
// {"handled":N,"failed":N,"skipped":N} (SIGTERM then exits). stderr: one short line per failed alert.

import https from 'node:https';
import os from 'node:os';
import { parseArgs } from 'node:util';

import { CoreV1Api, EventsV1Api, KubeConfig, Observable, V1MicroTime } from '@kubernetes/client-node';
import { AckPolicy, StorageType, connect, nanos } from 'nats';

const { values: args } = parseArgs({
    options: {
        nats: { type: 'string', default: 'nats://127.0.0.1:4222' },
        subject: { type: 'string', default: 'falco.>' },
        kubeconfig: { type: 'string' },
        concurrency: { type: 'string', default: '32' },
        'dry-run': { type: 'boolean', default: false },
        'default-agent': { type: 'boolean', default: false }, // client-node as shipped: no keep-alive
        jetstream: { type: 'string' },
        durable: { type: 'string', default: 'falco-peer' },
        protected: { type: 'string', default: '' },
        'cooldown-ms': { type: 'string', default: '0' },
    },
});
const concurrency = Number.parseInt(args.concurrency, 10);
const cooldownMs = Number.parseInt(args['cooldown-ms'], 10);
if (!args.kubeconfig || !(concurrency > 0) || !(cooldownMs >= 0)) {
    console.error('usage: node peer.js --nats URL --subject SUBJ --kubeconfig FILE --concurrency N [--dry-run] '
                  + '[--default-agent] [--jetstream STREAM [--durable NAME]] [--protected NS,NS] [--cooldown-ms MS]');
    process.exit(2);
}
const protectedNamespaces = new Set(args.protected.split(',').filter(Boolean));
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

// Cooldown: the time until which a pod is left alone after a DELETE, oldest first (a Map keeps insertion
// order), at most COOLDOWN_KEYS of them.
const COOLDOWN_KEYS = 100000;
const cooldown = new Map();

function coolingDown(key) {
    if (cooldownMs === 0) return false;
    const now = Date.now();
    if ((cooldown.get(key) ?? 0) > now) return true;
    cooldown.delete(key); // re-inserted as the newest
    if (cooldown.size >= COOLDOWN_KEYS) cooldown.delete(cooldown.keys().next().value);
    cooldown.set(key, now + cooldownMs);
    return false;
}

// Why an alert ends without a request, or null: no pod fields or a host event, a protected namespace,
// the pod's cooldown.
function skipReason(fields, namespace, name) {
    if (typeof namespace !== 'string' || !namespace || typeof name !== 'string' || !name) return 'no pod';
    if (fields['container.id'] === 'host') return 'host event';
    if (protectedNamespaces.has(namespace)) return 'protected namespace';
    if (coolingDown(`${namespace}/${name}`)) return 'cooldown';
    return null;
}

function why(err) {
    if (err?.code && err.body !== undefined) { // ApiException: the HTTP status and the Status object
        let body = err.body;
        try { if (typeof body === 'string') body = JSON.parse(body); } catch { /* not JSON */ }
        return `HTTP ${err.code} ${body?.reason ?? ''} ${body?.message ?? ''}`.trim();
    }
    return err?.message ?? String(err);
}

// The DELETE; true when the pod is gone or going (a 404: already gone, the goal holds, as in playbookd).
async function deletePod(namespace, name) {
    try {
        await core.deleteNamespacedPod({
            name, namespace, dryRun,
            body: { apiVersion: 'v1', kind: 'DeleteOptions', dryRun: dryRun && [dryRun] },
        }, withAgent);
        return true;
    } catch (err) {
        if (err?.code === 404) return false;
        throw err;
    }
}

// One alert. settle(how) is told once how its message ends: 'ack' (the DELETE succeeded, or nothing to
// do), 'nak' (try again later) or 'term' (never valid); core NATS passes a no-op.
async function handle(data, settle) {
    let alert;
    try {
        alert = JSON.parse(data);
    } catch (err) {
        counts.failed++;
        settle('term');
        console.error(`bad alert: ${err.message}`);
        return;
    }
    const fields = alert?.output_fields ?? {};
    const namespace = fields['k8s.ns.name'];
    const name = fields['k8s.pod.name'];
    if (skipReason(fields, namespace, name) !== null) {
        counts.skipped++;
        settle('ack');
        return;
    }
    let deleted;
    try {
        deleted = await deletePod(namespace, name);
    } catch (err) {
        cooldown.delete(`${namespace}/${name}`); // it had no effect: the next alert may act
        counts.failed++;
        settle('nak');
        console.error(`${namespace}/${name}: ${why(err)}`);
        return;
    }
    settle('ack');
    if (!deleted) {
        counts.handled++;
        return;
    }
    try {
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

// JetStream: the stream (created if absent) and the durable pull consumer, with playbookd's settings
// (file storage, 24 h; explicit acks, ack_wait 30 s, max_deliver 10, one filter subject). The consumer
// keeps at most --concurrency messages buffered besides the ones in flight, as playbookd's window of
// twice its workers.
async function jetstreamMessages(nc) {
    const jsm = await nc.jetstreamManager();
    try {
        await jsm.streams.info(args.jetstream);
    } catch {
        await jsm.streams.add({ name: args.jetstream, subjects: [args.subject], storage: StorageType.File,
                                max_age: nanos(24 * 3600 * 1000) });
    }
    await jsm.consumers.add(args.jetstream, { durable_name: args.durable, ack_policy: AckPolicy.Explicit,
                                               ack_wait: nanos(30000), max_deliver: 10,
                                               filter_subject: args.subject });
    const consumer = await nc.jetstream().consumers.get(args.jetstream, args.durable);
    return consumer.consume({ max_messages: concurrency });
}

const NAK_DELAY_MS = 1000; // playbookd's first backoff

function settler(msg) {
    if (!args.jetstream) return () => {};
    return (how) => (how === 'ack' ? msg.ack() : how === 'term' ? msg.term() : msg.nak(NAK_DELAY_MS));
}

const nc = await connect({ servers: args.nats, name: 'falco-peer' });
const messages = args.jetstream ? await jetstreamMessages(nc) : nc.subscribe(args.subject);
await nc.flush();
process.stdout.write('ready\n');

process.on('SIGUSR2', () => process.stdout.write(JSON.stringify(counts) + '\n'));
process.on('SIGTERM', () => {
    process.stdout.write(JSON.stringify(counts) + '\n', () => process.exit(0));
});

const slots = new Semaphore(concurrency);
for await (const msg of messages) {
    await slots.acquire();
    handle(msg.string(), settler(msg)).finally(() => slots.release());
}
