// forward.js: the benchmark's peer for falco-nats. It is what a team would write instead: a small Node.js
// forwarder (nats.js) that reads Falco's JSON alerts from a named pipe, line by line, and publishes each
// line as written on falco.<priority>.<slug> (GUIDE section 2): core NATS, or with --jetstream a publish
// that awaits the stream's ack before the next line, with a Nats-Msg-Id from the line's bytes, as
// falco-nats does. A line that is not a Falco alert is counted and skipped. bench/ runs it beside
// falco-nats; it is not part of playbookd.
//
//   node forward.js --nats nats://127.0.0.1:4222 --pipe FILE [--jetstream]
//
// stdout: one line "ready" once connected; on SIGTERM one line {"published":N,"skipped":N}.

import { createHash } from 'node:crypto';
import { constants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { connect } from 'nats';

const { values: args } = parseArgs({
    options: {
        nats: { type: 'string', default: 'nats://127.0.0.1:4222' },
        pipe: { type: 'string' },
        jetstream: { type: 'boolean', default: false },
    },
});
if (!args.pipe) {
    console.error('usage: node forward.js --nats URL --pipe FILE [--jetstream]');
    process.exit(2);
}

// Falco's priorities, in the order of its gRPC enum (a priority may come as that number).
const PRIORITIES = ['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'informational', 'debug'];

function priorityToken(priority) {
    if (Number.isInteger(priority)) return PRIORITIES[priority] ?? null;
    if (typeof priority !== 'string') return null;
    const token = priority.toLowerCase() === 'info' ? 'informational' : priority.toLowerCase();
    return PRIORITIES.includes(token) ? token : null;
}

// falco.<priority>.<slug>, or null when the line is not an alert with a known priority and a rule.
function subjectOf(alert) {
    const priority = priorityToken(alert?.priority);
    if (priority === null || typeof alert.rule !== 'string') return null;
    const slug = alert.rule.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
    return slug ? `falco.${priority}.${slug}` : null;
}

const counts = { published: 0, skipped: 0 };
const nc = await connect({ servers: args.nats, name: 'falco-forward' });
const js = args.jetstream ? nc.jetstream() : null;
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
    process.stdout.write(JSON.stringify(counts) + '\n', () => process.exit(0));
});

async function forward(line) {
    let subject = null;
    try {
        subject = subjectOf(JSON.parse(line));
    } catch { /* not JSON */ }
    if (subject === null) {
        counts.skipped++;
        console.error('skipped a line that is not a Falco alert');
        return;
    }
    if (js) {
        const msgID = createHash('sha256').update(line).digest('hex').slice(0, 32);
        await js.publish(subject, line, { msgID });
    } else {
        nc.publish(subject, line);
    }
    counts.published++;
}

// Writers of the pipe come and go (Falco restarts). Opened for reading and writing, as falco-nats does,
// the pipe never reaches an end of file in between, so nothing written meanwhile is lost; non-blocking,
// in a net.Socket, it is read from the event loop (fs streams would block a libuv thread in read(2)).
const pipe = new Socket({ fd: openSync(args.pipe, constants.O_RDWR | constants.O_NONBLOCK), readable: true });
for await (const line of createInterface({ input: pipe, crlfDelay: Infinity })) {
    if (line) await forward(line);
}
