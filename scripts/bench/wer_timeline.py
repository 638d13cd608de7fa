"""Per-clip timeline of a real-time WER bench run, from its debug log.

Run the bench with the server's debug log, then read it here:

    JARVIS_WER_REALTIME=1 JARVIS_WER_LIMIT=6 JARVIS_WER_VARIANTS=default \
    JARVIS_BENCH_LOG="warn,jarvis::stt=debug,wer=debug" cargo bench --bench wer > run.log 2>&1
    python3 scripts/bench/wer_timeline.py run.log

Each line: end of speech -> transcript (ms), the clip, then each endpointing event and decode
in ms after the chunk holding the end of speech was sent ("done230" = a decode of 230 ms).
"""
import re, sys, statistics as st
from datetime import datetime
def t(line):
    return datetime.strptime(line[:26], "%Y-%m-%dT%H:%M:%S.%f").timestamp()*1000
def read(path):
    """Each clip of the log: 'clip', 'end' and 'got' (ms), 'ev' (what the timeline prints),
    'vad' (each endpointing event) and 'decodes' (each decode's end and whole time, ms)."""
    clips=[]; cur=None
    for line in open(path):
        if 'bench: clip clip=' in line:
            cur={'clip':line.split('clip=')[1].split()[0],'ev':[],'vad':[],'decodes':[]}; clips.append(cur); continue
        if cur is None or not re.match(r'\d{4}-\d\d-\d\dT', line): continue
        ts=t(line)
        if 'end of speech is sent' in line: cur['end']=ts
        elif 'vad event=' in line:
            ev=(ts, line.split('event=')[1].split('(')[0].strip()); cur['ev'].append(ev); cur['vad'].append(ev)
        elif 'guided decode' in line: cur['ev'].append((ts,'guided'))
        elif 'nearest sentences scored' in line:
            m=re.search(r'took_ms=(\d+)', line); cur['ev'].append((ts,'scored%s'%(m.group(1) if m else '')))
        elif 'decoded again' in line: cur['ev'].append((ts,'again'))
        elif 'whisper: transcribed' in line:
            m=re.search(r'ctx (\d+) in (\d+) ms', line); cur['ev'].append((ts,'done%s'%m.group(2)))
            m=re.search(r'took=([\d.]+)(m?s)', line)
            if m: cur['decodes'].append((ts, float(m.group(1))*(1 if m.group(2)=='ms' else 1000)))
        elif 'transcript received' in line: cur['got']=ts
        elif 'end of speech decided' in line: cur['ev'].append((ts,'decided'))
    return clips
def main():
    clips=read(sys.argv[1])
    rows=[]
    for c in clips:
        if 'end' not in c or 'got' not in c: continue
        e=c['end']
        evs=[(round(ts-e),n) for ts,n in c['ev'] if ts>=e-400]
        rows.append((round(c['got']-e),c['clip'],evs))
    lat=[r[0] for r in rows]
    print('n',len(lat),'median',st.median(lat))
    for k in ['Dip','Pause','Quiet','Lull']:
        v=[next((x for x,n in r[2] if n==k),None) for r in rows]; v=[x for x in v if x is not None]
        print(k,'median after end',st.median(v) if v else None, len(v))
    g=sum(1 for r in rows if any(n=='guided' for _,n in r[2])); print('with guided',g)
    a=sum(1 for r in rows if any(n=='again' for _,n in r[2])); print('with wider retry',a)
    s=sum(1 for r in rows if any(n.startswith('scored') for _,n in r[2])); print('with nearest sentences scored',s)
    for r in sorted(rows):
        print(r[0], r[1], ' '.join(f'{n}@{x}' for x,n in r[2]))
if __name__ == '__main__':
    main()
