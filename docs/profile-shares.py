#!/usr/bin/env python3
"""Shares of a perf profile by what the time is spent on (docs/performance.md).

Reads `perf script -F ip,sym` output (one stack per sample, leaf first, blank line between)
and puts each sample in one class: by its leaf function for copies, hashing and allocation,
otherwise by the innermost frame of a known crate. Prints each class's share, largest first.
"""
import sys, collections
stacks=[]; cur=[]
for line in open(sys.argv[1]):
    line=line.rstrip('\n')
    if not line.strip():
        if cur: stacks.append(cur); cur=[]
        continue
    parts=line.strip().split(' ',1)
    cur.append(parts[1] if len(parts)>1 else '')
if cur: stacks.append(cur)
def cls(st):
    # The leaf function: the innermost frame that is not inlined (with the inlined ones above it).
    k=0
    while k < len(st)-1 and st[k].endswith('(inlined)'): k+=1
    leaf=' '.join(st[:k+1])
    chain=' | '.join(st)
    if 'memmove' in leaf or 'memcpy' in leaf:
        if 'sim::pipe::End as tokio::io::async_read' in chain: return "payload copy: simulated pipe -> hyper's read buffer"
        return 'other memory copies'
    if 'xxhash3' in leaf or 'twox_hash' in leaf:
        if 'txid::Digest::feed' in chain: return 'payload hash (XXH3-64, once per delivered file)'
        return 'other hashing (event log, seeds)'
    if leaf.startswith('mi_') or leaf.startswith('_mi_') or 'malloc' in leaf or 'clear_page' in leaf or 'page_fault' in leaf or 'folio' in leaf or leaf.startswith('__rust_alloc') or 'memset' in leaf:
        return 'allocation and page faults'
    for frame in st:
        if frame.startswith('hyper::') or frame.startswith('<hyper::') or 'httparse' in frame or frame.startswith('http::') or frame.startswith('<http::'):
            return 'hyper: HTTP/1.1 parsing, encoding, dispatch'
        if 'tokio::' in frame and ('runtime' in frame or 'time::' in frame or 'sync::' in frame or 'waker' in frame):
            return 'tokio: scheduling, timers, wakers'
        if frame.startswith('sim::') or frame.startswith('<sim::'):
            return 'simulated network (pipes, balancer, crashes)'
        if frame.startswith('node::') or frame.startswith('<node::'):
            return 'the node (BITS protocol, sessions, storage)'
        if frame.startswith('client::') or frame.startswith('<client::'):
            return 'the client (jobs, retries)'
        if frame.startswith('backend::') or frame.startswith('<backend::'):
            return 'the application (ledger, dedupe)'
        if frame.startswith('scenario::') or frame.startswith('<scenario::') or frame.startswith('probe::') or frame.startswith('<probe::') or 'hdrhistogram' in frame or 'serde' in frame:
            return 'harness: events, faults, tracking, checks, summary'
        if 'rand' in frame:
            return 'harness: events, faults, tracking, checks, summary'
    if 'vdso' in chain or 'clock_gettime' in chain: return 'clock reads'
    return 'other (process start, threads, kernel)'
c=collections.Counter(cls(s) for s in stacks)
n=sum(c.values())
for k,v in c.most_common():
    print(f"{100*v/n:5.1f}%  {k}")
print(n,"samples")
