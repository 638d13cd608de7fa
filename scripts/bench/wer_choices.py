"""How well the free/guided choice did in a WER bench run, from its debug log.

    JARVIS_WER_VARIANTS=default JARVIS_WER_LIMIT=24 JARVIS_WER_WYOMING_BENCH=0 \
    JARVIS_BENCH_LOG="warn,jarvis::stt=debug,wer=debug" cargo bench --bench wer > run.log 2>&1
    python3 scripts/bench/wer_choices.py run.log [-v]

For the first variant of the run: word errors (normalised less than the bench does), guided
decodes, corrections a perfect choice would have kept but the rule did not ("missed"), and
guided decodes kept that made the transcript worse ("bad keeps"). -v lists them. A guided
decode whisper abandoned (no beam could reach the mean log probability to be kept) wrote only
part of its sentence: it counts as a guided decode, never as a missed correction.
"""
import re, sys
def norm(s):
    s=s.lower().replace('-', ' ')
    s=re.sub(r"[^a-z0-9' ]"," ",s)
    return s.split()
def ed(a,b):
    d=list(range(len(b)+1))
    for i,x in enumerate(a,1):
        p=d[:]; d[0]=i
        for j,y in enumerate(b,1):
            d[j]=min(p[j]+1,d[j-1]+1,p[j-1]+(x!=y))
    return d[-1]
text=lambda q: q.split(': \\"',1)[1].rsplit('\\"',1)[0] if ': \\"' in q else ''
clips=[];cur=None
variant_stop = sys.argv[2] if len(sys.argv)>2 else None
for line in open(sys.argv[1]):
    if '== Jarvis, variant' in line and clips: break
    if 'bench: clip clip=' in line:
        m=re.search(r'clip=(\S+) reference=(.*)$',line); cur={'clip':m.group(1),'ref':m.group(2).strip(),'g':None}; clips.append(cur)
    elif cur and 'guided decode free=' in line:
        m=re.search(r'free="(.*?[^\\])" guided="(.*?[^\\])"(?: abandoned=(\w+))? keep=(\w+)',line)
        f,g,a,k=m.groups()
        # The guided decode's logprob is whisper's own (the grammar's penalties aside); logs
        # from before that change wrote it as "(unguided X)".
        ub=re.search(r'unguided (-?[\d.]+)',g) or re.search(r'logprob (-?[\d.]+)',g); fl=re.search(r'logprob (-?[\d.]+)',f)
        cur['g']=(text(f),text(g),k=='true',float(fl.group(1)),float(ub.group(1)) if ub else None,a=='true')
    elif cur and 'jarvis::stt::flow: transcript text=' in line:
        cur['final']=line.split('transcript text=')[1].split(' audio_secs=')[0]
tot=0;err=0;miss=0;bad=0;gfix=0;n_g=0
missed=[];badk=[]
for c in clips:
    r=norm(c['ref']); tot+=len(r)
    if 'final' in c: err+=ed(r,norm(c['final']))
    if c['g']:
        n_g+=1
        f,g,k,fl,ub,abandoned=c['g']; ef=ed(r,norm(f)); eg=ed(r,norm(g))
        if eg<ef and not k and not abandoned: miss+=ef-eg; missed.append((ef-eg,c['clip'],c['ref'],f,g,fl,ub))
        if eg>ef and k: bad+=eg-ef; badk.append((eg-ef,c['clip'],c['ref'],f,g,fl,ub))
print(f"clips {len(clips)} words {tot} errors {err} wer {100*err/tot:.1f}% guided {n_g}; missed corrections {miss} words in {len(missed)}; bad keeps {bad} words in {len(badk)}")
if '-v' in sys.argv:
    for x in sorted(missed,reverse=True): print('MISS',x)
    for x in sorted(badk,reverse=True): print('BAD ',x)
