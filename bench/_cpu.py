import time, meshsim, resource, sys
sc=meshsim.load_scenario('data/scenarios/tandem.yaml')
best=9e9
for i in range(int(sys.argv[1]) if len(sys.argv)>1 else 3):
    r0=resource.getrusage(resource.RUSAGE_SELF).ru_utime
    r=meshsim.run(sc)
    best=min(best, resource.getrusage(resource.RUSAGE_SELF).ru_utime-r0)
print('best cpu', round(best,3), r.summary['latency_ms']['mean'])
