"""A numpy model of csrc/tiled/depthwise_mma.cuh's index math, written beside the kernel before it ever ran on a GPU
(session 16; session 17: the band in two registers per lane and row, an m16n8k16 and an m16n8k8 step): plan(), the
staging into channel planes, pack_kernel's A fragments (band matrices of the filter rows), the lanes' ldmatrix row
addresses and what each lane receives, the m16n8k16 / m16n8k8 fragment layouts (PTX ISA) and the output
tile's indexing, per lane and register, over several tiles, filters 1x7 to 7x7, forward and backward-data. It checks
the arithmetic of the layout against PyTorch (errors ~1e-14), not the CUDA code itself: keep the two in step.

    python benchmarks/models/depthwise_mma_model.py     # a minute or two on a CPU
"""
import numpy as np
import torch
import torch.nn.functional as F


def plan(N,C,Hin,Win,Hout,Wout,R,S,ph,pw):
    mb=max(1,min(4,(Wout+15)//16)); tw=16*mb
    g=dict(N=N,C=C,Hin=Hin,Win=Win,Hout=Hout,Wout=Wout,R=R,S=S,ph=ph,pw=pw,mb=mb,tw=tw,
           tiles_w=(Wout+tw-1)//tw,tiles_h=(Hout+7)//8,srows=8+R-1,scols=tw+S-1,swidth=tw+16)
    g['pitch']=(((g['swidth']+7)//8)|1)*8; g['pe']=g['srows']*g['pitch']; return g
def pack(g,w):  # w[c,r,s] effective; per (c, r, lane): x = taps (2t-gid, 2t+1-gid), y = taps (2t+8-gid, 2t+9-gid)
    C,R,S=g['C'],g['R'],g['S']; fr=np.zeros((C,R,32,2,2))
    tap=lambda c,r,s: w[c,r,s] if 0<=s<S else 0
    for c in range(C):
     for r in range(R):
      for lane in range(32):
        gid,t=lane>>2,lane&3; s=2*t-gid
        fr[c,r,lane,0]=[tap(c,r,s),tap(c,r,s+1)]; fr[c,r,lane,1]=[tap(c,r,s+8),tap(c,r,s+9)]
    return fr
def A_full(fr):  # lane regs -> the 16 x 24 band: m16n8k16 A = {x, 0, y, x} (columns 0-15), m16n8k8 A = {0, y} (16-23)
    A=np.zeros((16,24))
    for lane in range(32):
        gid,t=lane>>2,lane&3; x,y=fr[lane,0],fr[lane,1]
        k16=[x,np.zeros(2),y,x]
        for j in range(4):
            for e in range(2): A[gid+8*(j&1), 2*t+8*(j>>1)+e]=k16[j][e]
        for e in range(2): A[gid+8, 16+2*t+e]=y[e]  # k8's a1; its a0 is zero
    return A
def run(g,x,w,bias):
    out=np.full((g['N'],g['Hout'],g['Wout'],g['C']),np.nan); fr=pack(g,w)
    for n in range(g['N']):
     for th in range(g['tiles_h']):
      for tw_ in range(g['tiles_w']):
       for c0 in range(0,g['C'],8):
        p0,q0=th*8,tw_*g['tw']; h0,w0=p0-g['ph'],q0-g['pw']
        planes=np.zeros(8*g['pe'])
        for i in range(g['srows']*g['swidth']):
            sr,sc=divmod(i,g['swidth']); h,ww=h0+sr,w0+sc
            v=x[n,h,ww,c0:c0+8] if (sc<g['scols'] and 0<=h<g['Hin'] and 0<=ww<g['Win']) else np.zeros(8)
            for ch in range(8): planes[ch*g['pe']+sr*g['pitch']+sc]=v[ch]
        tile=np.full(8*g['tw']*8,np.nan)
        for warp in range(8):
          c=c0+warp; A=[A_full(fr[c,r]) for r in range(g['R'])]
          for mb in range(g['mb']):
            acc=np.full((32,4),bias[c])
            for r in range(g['R']):
              addr=[warp*g['pe']+((l&7)*g['pitch']+8*(l>>3))+r*g['pitch']+16*mb for l in range(32)]
              mats=[np.array([planes[addr[8*i+j]:addr[8*i+j]+8] for j in range(8)]) for i in range(4)]
              breg=np.zeros((32,4,2))
              for L in range(32):
                for i in range(4): breg[L,i]=mats[i][L>>2,2*(L&3):2*(L&3)+2]
              B=np.zeros((24,8))  # matrices 0, 1: the k16 step's b0, b1; matrix 2: the k8 step's b0
              for L in range(32):
                gid,t=L>>2,L&3
                for i in range(3):
                  for e in range(2): B[2*t+8*i+e,gid]=breg[L,i,e]
              D=A[r]@B
              for L in range(32):
                gid,t=L>>2,L&3
                for h in range(2):
                  for j in range(2): acc[L,2*h+j]+=D[gid+8*h,2*t+j]
            for L in range(32):
              gid,t=L>>2,L&3
              for h in range(2):
                for j in range(2): tile[((2*t+j)*g['tw']+16*mb+gid+8*h)*8+warp]=acc[L,2*h+j]
        for i in range(8*g['tw']):
          row,col=divmod(i,g['tw']); oh,ow=p0+row,q0+col
          if oh<g['Hout'] and ow<g['Wout']: out[n,oh,ow,c0:c0+8]=tile[i*8:i*8+8]
    return out
def main():
  rng=np.random.default_rng(0)
  for (N,C,H,W,R,S,ph,pw,dgrad) in [(1,8,9,20,3,3,1,1,False),(2,16,11,37,7,7,3,3,False),(1,8,5,70,1,7,0,3,False),(1,8,10,17,5,3,0,2,False),(1,8,9,21,7,5,3,2,True),(1,8,6,18,3,1,0,0,True)]:
      x=rng.standard_normal((N,C,H,W)); wt=rng.standard_normal((C,1,R,S)); b=rng.standard_normal(C)
      if not dgrad:
          ref=F.conv2d(torch.tensor(x),torch.tensor(wt),torch.tensor(b),padding=(ph,pw),groups=C).numpy()
          P,Q=ref.shape[2:]; g=plan(N,C,H,W,P,Q,R,S,ph,pw); out=run(g,x.transpose(0,2,3,1),wt[:,0],b)
      else:
          P,Q=H+2*ph-R+1,W+2*pw-S+1; dy=rng.standard_normal((N,C,P,Q))
          ref=torch.nn.grad.conv2d_input((N,C,H,W),torch.tensor(wt),torch.tensor(dy),padding=(ph,pw),groups=C).numpy()
          g=plan(N,C,P,Q,H,W,R,S,R-1-ph,S-1-pw); out=run(g,dy.transpose(0,2,3,1),wt[:,0,::-1,::-1],np.zeros(C))
      out=out.transpose(0,3,1,2); err=np.abs(out-ref).max()
      print((N,C,H,W,R,S,ph,pw,dgrad), 'max error %.2e'%err)
      assert err < 1e-10, 'the model disagrees with PyTorch'


if __name__ == "__main__":
    main()
